// heka_lock_tool: fcntl byte-range locks for the cache-manager tests.
//   heka_lock_tool try PATH START LEN           exit 0 if a write lock was granted, 1 if busy
//   heka_lock_tool hold PATH START LEN MARKER FIFO
//       waits for the write lock (F_SETLKW), writes "locked" to MARKER, holds the lock until
//       FIFO is written to or closed, then exits.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: heka_lock_tool try|hold PATH START LEN [MARKER FIFO]\n");
    return 2;
  }
  std::string mode = argv[1];
  int fd = open(argv[2], O_RDWR);
  if (fd < 0) {
    std::fprintf(stderr, "open %s: %s\n", argv[2], std::strerror(errno));
    return 2;
  }
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = std::atoll(argv[3]);
  lock.l_len = std::atoll(argv[4]);
  if (mode == "try") {
    if (fcntl(fd, F_SETLK, &lock) == 0) return 0;
    std::printf("busy: %s\n", std::strerror(errno));
    return 1;
  }
  if (mode != "hold" || argc < 7) return 2;
  if (fcntl(fd, F_SETLKW, &lock) != 0) {
    std::fprintf(stderr, "F_SETLKW: %s\n", std::strerror(errno));
    return 1;
  }
  std::ofstream(argv[5]) << "locked\n";
  int fifo = open(argv[6], O_RDONLY);
  char c;
  while (fifo >= 0 && read(fifo, &c, 1) > 0) {
  }
  return 0;
}
