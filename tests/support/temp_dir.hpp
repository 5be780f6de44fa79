#pragma once
// A fresh directory under /tmp that is removed, with everything in it, on destruction.
#include <string>
#include <string_view>

namespace portrelay::test {

class TempDir {
 public:
  // Creates /tmp/<prefix>-XXXXXX. Throws std::system_error on failure.
  explicit TempDir(std::string_view prefix = "portrelay-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name; does not create anything.
  std::string file(std::string_view name) const;
  // Writes `content` to file(name), replacing it; returns the full path.
  std::string write_file(std::string_view name, std::string_view content) const;

 private:
  std::string path_;
};

}  // namespace portrelay::test
