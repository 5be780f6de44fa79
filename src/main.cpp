#include <cstdio>

int main() {
  std::puts("portrelay " PORTRELAY_VERSION);
  return 0;
}
