// heka_lock_tool: fcntl byte-range locks for the cache-manager tests.
//   heka_lock_tool try PATH START LEN           exit 0 if a write lock was granted, 1 if busy
//   heka_lock_tool hold PATH START LEN MARKER FIFO
//       waits for the write lock (F_SETLKW), writes "locked" to MARKER, holds the lock until
//       FIFO is written to or closed, then exits.
//   heka_lock_tool shrink-grow PATH
//       opens PATH, reads its first 4 KiB, truncates it to 100 bytes and grows it back to
//       8 KiB through the same descriptor, then checks bytes 4096..8191 read as zeros (exit 3
//       if not) and writes "x" at 5000 before closing (exit 4 if close fails).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

int ShrinkGrow(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return 2;
  char buf[4096];
  if (pread(fd, buf, sizeof buf, 0) < 0 || ftruncate(fd, 100) != 0 || ftruncate(fd, 8192) != 0) {
    return 2;
  }
  ssize_t n = pread(fd, buf, sizeof buf, 4096);
  if (n != static_cast<ssize_t>(sizeof buf)) return 3;
  for (char c : buf) {
    if (c != 0) return 3;
  }
  if (pwrite(fd, "x", 1, 5000) != 1) return 2;
  return close(fd) == 0 ? 0 : 4;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "shrink-grow") return ShrinkGrow(argv[2]);
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
