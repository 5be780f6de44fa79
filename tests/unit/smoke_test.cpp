#include <gtest/gtest.h>

#include "portrelay/smtp/reply.hpp"

TEST(Smoke, ReplyPredicates) {
  portrelay::smtp::Reply reply;
  reply.code = 451;
  EXPECT_TRUE(reply.transient());
  EXPECT_FALSE(reply.positive());
}
