// The spool's file rule (spool_directory.hpp): names in the spool are never followed through
// a symbolic link, never opened blocking, and only regular files are used. Each test plants
// what the spool's owner could plant and checks that the target is untouched and that no
// call waits on a FIFO (a FIFO opened blocking would hang the test until its timeout).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "portrelay/cli/spool_owner.hpp"
#include "portrelay/spool/spool_directory.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::spool {
namespace {

namespace fs = std::filesystem;

std::string content_of(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Planted {
  test::TempDir dir{"portrelay-fsafety"};
  std::string target = dir.write_file("target", "not the spool's\n");
  std::string spool = dir.path() + "/spool";
  Planted() { SpoolDirectory make(spool); }  // the tree, as the daemon makes it
};

TEST(SpoolFileSafety, OpenRefusesASymbolicLinkAndLeavesItsTargetAlone) {
  Planted planted;
  SpoolDirectory directory(planted.spool, false);
  fs::create_symlink(planted.target, planted.spool + "/queue/LINK");
  auto read = open_spool_file(directory.queue_fd(), "LINK", O_RDONLY);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message.find("symbolic link"), std::string::npos) << read.error().message;
  // Creating over it (O_EXCL) fails too, and nothing is written through it.
  auto created = open_spool_file(directory.queue_fd(), "LINK", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_FALSE(created);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(content_of(planted.target), "not the spool's\n");
}

TEST(SpoolFileSafety, OpenRefusesAFifoWithoutWaitingAndADirectory) {
  Planted planted;
  SpoolDirectory directory(planted.spool, false);
  ASSERT_EQ(::mkfifo((planted.spool + "/queue/FIFO").c_str(), 0600), 0);
  fs::create_directory(planted.spool + "/queue/DIR");
  auto fifo = open_spool_file(directory.queue_fd(), "FIFO", O_RDONLY);
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("FIFO"), std::string::npos) << fifo.error().message;
  auto dir = open_spool_file(directory.queue_fd(), "DIR", O_RDONLY);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("directory"), std::string::npos) << dir.error().message;
  EXPECT_FALSE(open_spool_file(directory.queue_fd(), "../lock", O_RDONLY));
}

TEST(SpoolFileSafety, ARegularFileOpensBlocking) {
  Planted planted;
  SpoolDirectory directory(planted.spool, false);
  auto created = open_spool_file(directory.tmp_fd(), "new", O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(::fcntl(*created, F_GETFL) & O_NONBLOCK, 0);
  ASSERT_TRUE(write_all(*created, "text"));
  ::close(*created);
  auto text = read_spool_file(directory.tmp_fd(), "new");
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_EQ(*text, "text");
}

TEST(SpoolFileSafety, ScanSkipsAFifoAndALinkInQueueAndFailed) {
  Planted planted;
  ASSERT_EQ(::mkfifo((planted.spool + "/queue/0000000000000001").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo((planted.spool + "/failed/0000000000000002").c_str(), 0600), 0);
  fs::create_symlink(planted.target, planted.spool + "/queue/0000000000000003");
  SpoolDirectory directory(planted.spool, false);
  RecoveryReport report = directory.scan();
  EXPECT_TRUE(report.messages.empty());
  EXPECT_TRUE(report.corrupt.empty());
  EXPECT_EQ(report.unreadable.size(), 3u);
  // Recovery leaves them where they are (not "corrupt": their content says nothing).
  ASSERT_TRUE(directory.try_lock());
  report = directory.recover();
  EXPECT_EQ(report.unreadable.size(), 3u);
  EXPECT_TRUE(fs::is_symlink(planted.spool + "/queue/0000000000000003"));
  EXPECT_EQ(content_of(planted.target), "not the spool's\n");
}

TEST(SpoolFileSafety, ALockThatIsALinkIsRefusedAndItsTargetKept) {
  Planted planted;
  fs::create_symlink(planted.target, planted.spool + "/lock");
  const auto before = fs::status(planted.target).permissions();
  SpoolDirectory directory(planted.spool, false);
  EXPECT_THROW(directory.try_lock(), std::runtime_error);
  EXPECT_FALSE(directory.locked_by_other());
  EXPECT_EQ(content_of(planted.target), "not the spool's\n");
  EXPECT_EQ(fs::status(planted.target).permissions(), before);
}

TEST(SpoolFileSafety, ASubdirectoryThatIsALinkIsRefused) {
  for (const char* sub : {"tmp", "queue", "failed", "corrupt"}) {
    Planted planted;
    fs::create_directory(planted.dir.path() + "/elsewhere");
    fs::remove_all(planted.spool + "/" + sub);
    fs::create_directory_symlink(planted.dir.path() + "/elsewhere", planted.spool + "/" + sub);
    EXPECT_THROW(SpoolDirectory(planted.spool, false), std::runtime_error) << sub;
    EXPECT_THROW(SpoolDirectory(planted.spool, true), std::runtime_error) << sub;
  }
}

// Root becoming another user, in a child process (the change cannot be undone).
TEST(SpoolFileSafety, RootBecomesTheSpoolOwnerForGood) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto became = cli::become_spool_owner(65534, 65534);
    const bool dropped = became && ::getuid() == 65534 && ::geteuid() == 65534 &&
                         ::getegid() == ::getgid() && ::setuid(0) != 0;
    ::_exit(dropped ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace portrelay::spool
