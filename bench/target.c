/*
 * bench target: a fast TCP source / sink / echo on 127.0.0.1, one epoll
 * thread. The first byte a client sends picks the mode:
 *
 *   'S'  sink:   read and discard until a 'Z' byte, then answer the count of
 *                bytes before it (8 bytes, big-endian, not counting the 'S');
 *                then discard until EOF and close. (An end marker rather than
 *                a half-close: not every relay passes half-closes.)
 *   'R'  source: send bytes without end until the peer closes.
 *   'E'  echo:   echo every byte, the 'E' included, until EOF, then close.
 *
 * A connection that sends nothing stays idle (used for the idle-stream
 * memory scenario). Prints {"port":N} on stdout once listening. Exits on
 * SIGTERM/SIGINT, when stdin reaches EOF (its parent is gone), or after
 * --max-seconds (default 3600).
 *
 *   target [--port P] [--max-seconds S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SRC_CHUNK (256 * 1024)
#define RD_CHUNK (1024 * 1024)

enum { M_NEW = 0, M_SINK = 'S', M_SOURCE = 'R', M_ECHO = 'E', M_DRAIN = 'D' };

struct conn {
  int fd;
  int mode;
  uint64_t count;
  char *pend; /* echo bytes not yet written */
  size_t pend_len, pend_off;
};

static volatile sig_atomic_t stop_flag = 0;
static void on_sig(int s) { (void)s; stop_flag = 1; }

static int ep;
static char *srcbuf, *rdbuf;
static struct conn stdin_marker, listen_marker;

static void conn_close(struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pend);
  free(c);
}

static void set_events(struct conn *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Write echo bytes; returns -1 if the connection failed. */
static int echo_write(struct conn *c, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  if (n > 0) { /* keep the rest, stop reading until it is written */
    c->pend = malloc(n);
    if (!c->pend) return -1;
    memcpy(c->pend, p, n);
    c->pend_len = n;
    c->pend_off = 0;
    set_events(c, EPOLLOUT);
  }
  return 0;
}

static void fill_source(struct conn *c) {
  for (;;) {
    ssize_t w = send(c->fd, srcbuf, SRC_CHUNK, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      conn_close(c);
      return;
    }
  }
}

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t r = recv(c->fd, rdbuf, RD_CHUNK, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      conn_close(c);
      return;
    }
    if (r == 0) { /* EOF */
      conn_close(c);
      return;
    }
    char *p = rdbuf;
    size_t n = (size_t)r;
    if (c->mode == M_NEW) {
      c->mode = p[0];
      if (c->mode == M_SINK) { p++; n--; }
      else if (c->mode == M_SOURCE) {
        set_events(c, EPOLLIN | EPOLLOUT);
        fill_source(c);
        return; /* c may be gone; the rest of the input is ignored anyway */
      } else if (c->mode != M_ECHO) { conn_close(c); return; }
    }
    if (c->mode == M_SINK) {
      char *z = memchr(p, 'Z', n);
      if (!z) {
        c->count += n;
        continue;
      }
      c->count += (size_t)(z - p);
      unsigned char b[8];
      for (int i = 0; i < 8; i++) b[i] = (unsigned char)(c->count >> (56 - 8 * i));
      /* 8 bytes into an empty send buffer: cannot block */
      if (send(c->fd, b, 8, MSG_NOSIGNAL) != 8) { conn_close(c); return; }
      c->mode = M_DRAIN;
    } else if (c->mode == M_ECHO) {
      if (echo_write(c, p, n) < 0) { conn_close(c); return; }
      if (c->pend) return;
    }
    /* source: input is ignored */
  }
}

static void on_writable(struct conn *c) {
  if (c->mode == M_SOURCE) { fill_source(c); return; }
  if (c->pend) {
    while (c->pend_off < c->pend_len) {
      ssize_t w = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        conn_close(c);
        return;
      }
      c->pend_off += (size_t)w;
    }
    free(c->pend);
    c->pend = NULL;
    set_events(c, EPOLLIN);
    on_readable(c);
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  int port = 0;
  double max_s = 3600;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc) max_s = atof(argv[++i]);
    else { fprintf(stderr, "usage: target [--port P] [--max-seconds S]\n"); return 2; }
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_sig);
  signal(SIGINT, on_sig);
  srcbuf = malloc(SRC_CHUNK);
  rdbuf = malloc(RD_CHUNK);
  for (int i = 0; i < SRC_CHUNK; i++) srcbuf[i] = (char)('a' + i % 26);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
    perror("target: bind/listen");
    return 1;
  }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  printf("{\"port\":%d}\n", ntohs(a.sin_port));
  fflush(stdout);

  ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &listen_marker};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
  e.data.ptr = &stdin_marker;
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e); /* fails harmlessly if stdin is a file */

  double deadline = now_s() + max_s;
  struct epoll_event evs[256];
  while (!stop_flag && now_s() < deadline) {
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &stdin_marker) {
        char b[256];
        ssize_t r = read(0, b, sizeof b);
        if (r <= 0) stop_flag = 1;
        continue;
      }
      if (p == &listen_marker) {
        for (;;) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
        }
        continue;
      }
      struct conn *c = p;
      uint32_t ev = evs[i].events;
      if ((ev & EPOLLOUT) || c->pend) {
        on_writable(c);
        continue; /* c may be freed; pending input is seen on the next round */
      }
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
  }
  return 0;
}
