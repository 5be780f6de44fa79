// The spool's one writer under injected faults (support/fault_env.hpp): every fault of the
// file system leaves no half-written file behind (nothing in tmp/, nothing in queue/ that a
// start or `portrelay queue list` would take for a message) and is reported as a failure
// with its code, so the message is never acknowledged. A state that cannot be replaced
// leaves the previous one as it was.
#include "portrelay/spool/spool_writer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "portrelay/spool/spool_directory.hpp"
#include "support/fault_env.hpp"
#include "support/temp_dir.hpp"

namespace portrelay::spool {
namespace {

namespace fs = std::filesystem;
using test::FaultEnv;
using Op = FaultEnv::Op;

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  return names;
}

const std::string kContent = "Subject: test\r\n\r\n" + std::string(200000, 'x') + "\r\n";

SpoolChange new_message(const std::string& id, std::vector<std::string> recipients = {"b@x.test"}) {
  Envelope envelope;
  envelope.id = id;
  envelope.arrival_ms = 1700000000000;
  envelope.sender = "a@x.test";
  envelope.recipients = std::move(recipients);
  auto body = std::make_unique<relay::MessageBody>();
  EXPECT_TRUE(body->append(kContent));
  return SpoolChange::store(id, encode_header(envelope, kContent.size()), std::move(body));
}

struct Fixture {
  test::TempDir dir{"portrelay-writer"};
  std::string root = dir.path() + "/spool";
  FaultEnv env;
  SpoolDirectory directory{root, true, env};
  SpoolWriter writer{directory};

  Status store(const std::string& id) {
    std::vector<SpoolChange> changes;
    changes.push_back(new_message(id));
    (void)writer.apply(changes);
    return changes[0].result;
  }
  // What a start (or `queue list`) would see.
  std::size_t visible_messages() const { return directory.scan().messages.size(); }
  void expect_nothing_left(const std::string& why) const {
    EXPECT_TRUE(names_in(root + "/queue").empty()) << why;
    EXPECT_TRUE(names_in(root + "/tmp").empty()) << why;
    EXPECT_EQ(visible_messages(), 0u) << why;
  }
};

TEST(SpoolWriter, StoresAMessageThatReadsBackWhole) {
  Fixture f;
  const Status stored = f.store("M1");
  ASSERT_TRUE(stored) << stored.error().message;
  auto loaded = f.directory.load("M1");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->layout.body_size, kContent.size());
  EXPECT_TRUE(names_in(f.root + "/tmp").empty());
  EXPECT_EQ(f.env.calls(Op::SyncData), 1u);        // the file's own data
  EXPECT_EQ(f.env.calls(Op::SyncFileSystem), 0u);  // never the whole file system
  EXPECT_EQ(f.env.calls(Op::Sync), 1u);            // queue/ once
}

// #19: an acknowledgement waits for its own data only. Each new file's data is synced by its
// own descriptor before its name moves into queue/, and queue/ is synced after the last
// rename: a crash at any point leaves either no name or a name with its content.
TEST(SpoolWriter, EachFilesDataIsSyncedBeforeItsNameAndTheDirectoryAfterIt) {
  Fixture f;
  std::vector<SpoolChange> changes;
  changes.push_back(new_message("M1"));
  changes.push_back(new_message("M2"));
  changes.push_back(SpoolChange::state("M0", "attempts 1\n", false));
  (void)f.writer.apply(changes);
  for (const auto& change : changes) ASSERT_TRUE(change.result) << change.result.error().message;
  const auto journal = f.env.durability_journal();
  ASSERT_EQ(journal.size(), 7u) << ::testing::PrintToString(journal);
  EXPECT_EQ(journal[0], "sync_data M1");
  EXPECT_EQ(journal[1], "sync_data M2");
  EXPECT_EQ(journal[2].rfind("sync_data M0.state.", 0), 0u) << journal[2];
  EXPECT_EQ(journal[3], "rename M1 -> M1");
  EXPECT_EQ(journal[4], "rename M2 -> M2");
  EXPECT_EQ(journal[5].rfind("rename M0.state.", 0), 0u) << journal[5];
  EXPECT_EQ(journal[6], "sync queue");
}

// A message delivered to everyone leaves without a directory sync (at worst a crash brings
// it back and it is delivered again); an operator's removal is synced; a lazy removal in the
// same round as a store is covered by the store's sync of queue/.
TEST(SpoolWriter, ARemovalAfterDeliveryIsNotSyncedAnOperatorsIs) {
  Fixture f;
  ASSERT_TRUE(f.store("M1"));
  ASSERT_TRUE(f.store("M2"));
  ASSERT_TRUE(f.store("M3"));
  const std::size_t before = f.env.durability_journal().size();
  std::vector<SpoolChange> changes;
  changes.push_back(SpoolChange::remove("M1", false, /*durable=*/false));
  (void)f.writer.apply(changes);
  ASSERT_TRUE(changes[0].result);
  EXPECT_EQ(f.env.durability_journal().size(), before) << "no sync for a delivered message";
  EXPECT_EQ(f.visible_messages(), 2u);

  changes.clear();
  changes.push_back(SpoolChange::remove("M2", false));
  (void)f.writer.apply(changes);
  ASSERT_TRUE(changes[0].result);
  auto journal = f.env.durability_journal();
  ASSERT_EQ(journal.size(), before + 1);
  EXPECT_EQ(journal.back(), "sync queue");

  changes.clear();
  changes.push_back(SpoolChange::remove("M3", false, /*durable=*/false));
  changes.push_back(new_message("M4"));
  (void)f.writer.apply(changes);
  ASSERT_TRUE(changes[0].result);
  ASSERT_TRUE(changes[1].result);
  journal = f.env.durability_journal();
  ASSERT_EQ(journal.size(), before + 4) << ::testing::PrintToString(journal);
  EXPECT_EQ(journal.back(), "sync queue");
  EXPECT_EQ(f.visible_messages(), 1u);
}

TEST(SpoolWriter, ADataSyncFailureFailsOnlyItsOwnMessage) {
  Fixture f;
  f.env.fail(Op::SyncData, EIO, "M2");
  std::vector<SpoolChange> changes;
  changes.push_back(new_message("M1"));
  changes.push_back(new_message("M2"));
  (void)f.writer.apply(changes);
  EXPECT_TRUE(changes[0].result);
  EXPECT_EQ(changes[1].result.code(), ErrorCode::IoError);
  EXPECT_EQ(f.env.pending_faults(), 0u);
  EXPECT_TRUE(names_in(f.root + "/tmp").empty());
  auto report = f.directory.scan();
  ASSERT_EQ(report.messages.size(), 1u);
  EXPECT_EQ(report.messages[0].layout.envelope.id, "M1");
}

struct StoreFault {
  const char* name;
  void (*arm)(FaultEnv&);
  ErrorCode code;
};

TEST(SpoolWriter, EveryFaultWhileStoringLeavesNothingAndIsReported) {
  const StoreFault faults[] = {
      {"ENOSPC on the first write", [](FaultEnv& env) { env.fail(Op::Write, ENOSPC); },
       ErrorCode::NoSpace},
      {"ENOSPC in the body", [](FaultEnv& env) { env.fail(Op::Write, ENOSPC, "", 3); },
       ErrorCode::NoSpace},
      {"a short write, then ENOSPC",
       [](FaultEnv& env) {
         env.short_write(10);
         env.fail(Op::Write, ENOSPC, "", 2);
       },
       ErrorCode::NoSpace},
      {"EMFILE creating the file", [](FaultEnv& env) { env.fail(Op::Open, EMFILE, "M1"); },
       ErrorCode::TooManyFiles},
      {"EMFILE opening tmp/", [](FaultEnv& env) { env.fail(Op::Open, EMFILE, "tmp"); },
       ErrorCode::TooManyFiles},
      {"EIO on the data sync", [](FaultEnv& env) { env.fail(Op::SyncData, EIO); },
       ErrorCode::IoError},
      {"the rename into queue/ refused", [](FaultEnv& env) { env.fail(Op::Rename, EIO, "M1"); },
       ErrorCode::IoError},
      {"EIO on the fsync of queue/", [](FaultEnv& env) { env.fail(Op::Sync, EIO); },
       ErrorCode::IoError},
  };
  for (const auto& fault : faults) {
    Fixture f;
    fault.arm(f.env);
    const Status stored = f.store("M1");
    EXPECT_EQ(f.env.pending_faults(), 0u) << fault.name << ": the fault was never reached";
    ASSERT_FALSE(stored) << fault.name << ": reported stored";
    EXPECT_EQ(stored.code(), fault.code) << fault.name << ": " << stored.error().message;
    f.expect_nothing_left(fault.name);
  }
}

TEST(SpoolWriter, AShortWriteAloneIsCompletedNotTruncated) {
  Fixture f;
  f.env.short_write(7);
  ASSERT_TRUE(f.store("M1"));
  EXPECT_EQ(f.env.pending_faults(), 0u);
  auto loaded = f.directory.load("M1");  // checks the size and the end marker
  ASSERT_TRUE(loaded) << loaded.error().message;
  auto text = read_spool_file(f.directory.queue_fd(), "M1", 1 << 20);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->substr(loaded->layout.body_offset, kContent.size()), kContent);
}

TEST(SpoolWriter, OneFailedMessageDoesNotTakeTheRoundWithIt) {
  Fixture f;
  f.env.fail(Op::Open, EMFILE, "M2");
  std::vector<SpoolChange> changes;
  changes.push_back(new_message("M1"));
  changes.push_back(new_message("M2"));
  changes.push_back(new_message("M3"));
  (void)f.writer.apply(changes);
  EXPECT_TRUE(changes[0].result);
  EXPECT_EQ(changes[1].result.code(), ErrorCode::TooManyFiles);
  EXPECT_TRUE(changes[2].result);
  EXPECT_EQ(names_in(f.root + "/tmp").size(), 0u);
  auto report = f.directory.scan();
  ASSERT_EQ(report.messages.size(), 2u);
  EXPECT_EQ(report.messages[0].layout.envelope.id, "M1");
  EXPECT_EQ(report.messages[1].layout.envelope.id, "M3");
}

TEST(SpoolWriter, AStateThatCannotBeReplacedKeepsThePreviousOne) {
  Fixture f;
  ASSERT_TRUE(f.store("M1"));
  DeliveryState first;
  first.attempts = 1;
  first.next_attempt_ms = 5000;
  first.recipients.resize(1);
  std::vector<SpoolChange> changes;
  changes.push_back(SpoolChange::state("M1", encode_state(first), false));
  (void)f.writer.apply(changes);
  ASSERT_TRUE(changes[0].result);

  DeliveryState second = first;
  second.attempts = 2;
  for (auto arm : {+[](FaultEnv& env) { env.fail(Op::Write, ENOSPC); },
                   +[](FaultEnv& env) { env.fail(Op::SyncData, EIO); },
                   +[](FaultEnv& env) { env.fail(Op::Rename, EIO, ".state"); },
                   +[](FaultEnv& env) { env.fail(Op::Open, EMFILE, ".state"); }}) {
    arm(f.env);
    changes.clear();
    changes.push_back(SpoolChange::state("M1", encode_state(second), false));
    (void)f.writer.apply(changes);
    EXPECT_FALSE(changes[0].result);
    EXPECT_EQ(f.env.pending_faults(), 0u);
    auto loaded = f.directory.load("M1");
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->state, first);
    EXPECT_TRUE(names_in(f.root + "/tmp").empty());
  }
}

TEST(SpoolWriter, RemoveAndMoveReportARefusedCallAndKeepTheMessage) {
  Fixture f;
  ASSERT_TRUE(f.store("M1"));
  f.env.fail(Op::Remove, EIO, "M1");
  std::vector<SpoolChange> changes;
  changes.push_back(SpoolChange::remove("M1", false));
  (void)f.writer.apply(changes);
  EXPECT_EQ(changes[0].result.code(), ErrorCode::IoError);
  EXPECT_EQ(f.visible_messages(), 1u);

  f.env.fail(Op::Rename, EIO, "M1");
  changes.clear();
  changes.push_back(SpoolChange::move_to_failed("M1"));
  (void)f.writer.apply(changes);
  EXPECT_FALSE(changes[0].result);
  EXPECT_EQ(f.directory.scan().failed.size(), 0u);
  EXPECT_EQ(f.visible_messages(), 1u);

  changes.clear();
  changes.push_back(SpoolChange::remove("M1", false));
  (void)f.writer.apply(changes);
  EXPECT_TRUE(changes[0].result);
  EXPECT_EQ(f.visible_messages(), 0u);
}

TEST(SpoolWriter, AStateLeftInTmpByAnInterruptedRunIsReplaced) {
  Fixture f;
  ASSERT_TRUE(f.store("M1"));
  // The name the next state write of this process will use.
  const std::string stale = "M1.state." + std::to_string(::getpid()) + ".1";
  f.dir.write_file("spool/tmp/" + stale, "half");
  DeliveryState state;
  state.recipients.resize(1);
  state.attempts = 3;
  std::vector<SpoolChange> changes;
  changes.push_back(SpoolChange::state("M1", encode_state(state), false));
  (void)f.writer.apply(changes);
  ASSERT_TRUE(changes[0].result) << changes[0].result.error().message;
  EXPECT_EQ(f.directory.load("M1")->state.attempts, 3u);
  EXPECT_TRUE(names_in(f.root + "/tmp").empty());
}

// Recovery tells "could not read it" from "it is not a message" by the error's code, never
// by its words: the first is left in place, the second moved to corrupt/.
TEST(SpoolDirectoryRecovery, AnIoErrorLeavesTheFileAndCorruptionMovesIt) {
  Fixture f;
  ASSERT_TRUE(f.store("M1"));
  f.dir.write_file("spool/queue/JUNK", "not a spool file");
  f.env.fail(Op::Open, EMFILE, "M1");
  auto report = f.directory.recover();
  ASSERT_EQ(report.unreadable.size(), 1u);
  EXPECT_NE(report.unreadable[0].find("queue/M1"), std::string::npos) << report.unreadable[0];
  EXPECT_EQ(report.permission_denied, 0u);
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_NE(report.corrupt[0].find("queue/JUNK"), std::string::npos);
  EXPECT_TRUE(fs::exists(f.root + "/queue/M1"));
  EXPECT_FALSE(fs::exists(f.root + "/queue/JUNK"));
  EXPECT_TRUE(fs::exists(f.root + "/corrupt/queue-JUNK"));

  f.env.fail(Op::Read, EIO);
  report = f.directory.scan();
  EXPECT_EQ(report.unreadable.size(), 1u);
  EXPECT_TRUE(report.corrupt.empty());

  f.env.fail(Op::Open, EACCES, "M1");
  report = f.directory.scan();
  EXPECT_EQ(report.unreadable.size(), 1u);
  EXPECT_EQ(report.permission_denied, 1u);
  EXPECT_EQ(f.directory.scan().messages.size(), 1u);
}

}  // namespace
}  // namespace portrelay::spool
