// ascii::append_hex: the fixed-width hex the spool writes into queue ids and record fields.
#include "portrelay/base/ascii.hpp"

#include <gtest/gtest.h>

namespace portrelay::ascii {
namespace {

TEST(AppendHex, ZeroPadsToTheWidthAndKeepsOnlyTheLowDigits) {
  std::string text = "id:";
  append_hex(text, 0x1a2b, 6);
  EXPECT_EQ(text, "id:001a2b");
  std::string upper;
  append_hex(upper, 0x19C3F2A0B7DULL, 11, true);
  append_hex(upper, 0x123456, 5, true);  // only the low 5 digits, as %05X of a masked value
  EXPECT_EQ(upper, "19C3F2A0B7D23456");
  std::string full;
  append_hex(full, ~0ULL, 16);
  EXPECT_EQ(full, "ffffffffffffffff");
}

}  // namespace
}  // namespace portrelay::ascii
