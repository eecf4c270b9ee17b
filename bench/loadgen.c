/*
 * bench load generator: one binary for every system. It speaks SOCKS5
 * itself (RFC 1928 CONNECT with IPv4 address, no-auth or RFC 1929
 * user/password), step by step like curl (greeting, auth, CONNECT, each
 * answer awaited), with TCP_NODELAY like curl. Without --socks it connects
 * straight to --target (direct, or a plain relay's listen port).
 *
 * The target is bench/target.c: the first byte picks sink 'S', source 'R'
 * or echo 'E'.
 *
 * Modes (each prints one JSON object per result on stdout):
 *   probe                  one stream + 1-byte echo; exit status 0 if it worked
 *   up    --seconds S      one stream, upload for S s; ends with 'Z', the target answers its count
 *   down  --seconds S      one stream, download for S s
 *   par   --streams N --seconds S   N parallel download streams, aggregate
 *   lat   --count N [--warmup W]    sequential connect + handshake + 1-byte echo
 *   rate  --workers N --seconds S [--warm-seconds W]   N workers opening short
 *                          connections (64-byte echo); the first W seconds are not counted
 *                          (the same load, so JIT runtimes are measured warm)
 *   burst --streams N      N threads start together (a barrier), each opens one stream
 *                          with a 1-byte echo and closes it: p50/p99/max of each stream's time
 *   fair  --streams N --seconds S [--idle-seconds I] [--warm-seconds W] [--interval-ms 10]
 *                          [--count C] [--fresh-seconds F]   the shared-bottleneck scenario
 *                          (bench/fair.ts): one interactive stream does a 1-byte echo every
 *                          interval, I s alone ("idle"), then N download streams start, and
 *                          after W s the echoes are timed for S s "under load", then up to C
 *                          fresh connections (connect + handshake + 1-byte echo, one after
 *                          another) for at most F s; bulk MiB/s over those S + F s
 *   hold  --stages 1000,5000 --conc C   open and hold idle streams (each verified by a
 *                          1-byte echo); after each stage print a line and wait for a
 *                          line on stdin before the next stage (EOF: close all, exit)
 *
 * Common: --target H:P  --socks H:P  --user U --pass P  --timeout S (per socket
 * operation, default 10)  --max-seconds S (whole run, default 600; SIGALRM ends it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BUF (1024 * 1024)

static struct sockaddr_in target_addr, socks_addr;
static int use_socks = 0;
static const char *user = NULL, *pass = NULL;
static double op_timeout = 10;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static int parse_addr(const char *s, struct sockaddr_in *a) {
  char host[64];
  const char *c = strrchr(s, ':');
  if (!c || (size_t)(c - s) >= sizeof host) return -1;
  memcpy(host, s, (size_t)(c - s));
  host[c - s] = 0;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)atoi(c + 1));
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_n(int fd, void *p, size_t n) {
  char *b = p;
  while (n > 0) {
    ssize_t r = recv(fd, b, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      errno = ECONNRESET; /* EOF where bytes were expected */
      return -1;
    }
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); close(fd); return -1; } while (0)

/* Connect (through SOCKS5 if configured) to the target. Returns the fd or -1 with err set. */
static int open_stream(char *err, size_t errlen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = (time_t)op_timeout, .tv_usec = (suseconds_t)((op_timeout - (time_t)op_timeout) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in *a = use_socks ? &socks_addr : &target_addr;
  if (connect(fd, (struct sockaddr *)a, sizeof *a) < 0) FAIL("connect: %s", strerror(errno));
  if (!use_socks) return fd;
  unsigned char b[600];
  b[0] = 5, b[1] = 1, b[2] = user ? 2 : 0;
  if (write_all(fd, b, 3) < 0) FAIL("socks greeting: %s", strerror(errno));
  if (read_n(fd, b, 2) < 0) FAIL("socks method: %s", strerror(errno));
  if (b[0] != 5 || b[1] != (user ? 2 : 0)) FAIL("socks method refused (%d)", b[1]);
  if (user) {
    size_t ul = strlen(user), pl = strlen(pass), n = 0;
    b[n++] = 1;
    b[n++] = (unsigned char)ul;
    memcpy(b + n, user, ul), n += ul;
    b[n++] = (unsigned char)pl;
    memcpy(b + n, pass, pl), n += pl;
    if (write_all(fd, b, n) < 0) FAIL("socks auth: %s", strerror(errno));
    if (read_n(fd, b, 2) < 0) FAIL("socks auth reply: %s", strerror(errno));
    if (b[1] != 0) FAIL("socks auth failed (%d)", b[1]);
  }
  b[0] = 5, b[1] = 1, b[2] = 0, b[3] = 1;
  memcpy(b + 4, &target_addr.sin_addr, 4);
  memcpy(b + 8, &target_addr.sin_port, 2);
  if (write_all(fd, b, 10) < 0) FAIL("socks connect: %s", strerror(errno));
  if (read_n(fd, b, 4) < 0) FAIL("socks reply: %s", strerror(errno));
  if (b[0] != 5 || b[1] != 0) FAIL("socks reply %d", b[1]);
  size_t rest = b[3] == 1 ? 6 : b[3] == 4 ? 18 : 0;
  if (b[3] == 3) {
    if (read_n(fd, b, 1) < 0) FAIL("socks reply: %s", strerror(errno));
    rest = (size_t)b[0] + 2;
  }
  if (rest == 0 || read_n(fd, b, rest) < 0) FAIL("socks reply address: %s", strerror(errno));
  return fd;
}

/* Open a stream and check it end to end with a 1-byte echo. */
static int open_echo1(char *err, size_t errlen) {
  int fd = open_stream(err, errlen);
  if (fd < 0) return -1;
  char c = 'E';
  if (write_all(fd, &c, 1) < 0) FAIL("echo write: %s", strerror(errno));
  c = 0;
  if (read_n(fd, &c, 1) < 0) FAIL("echo read: %s", strerror(errno));
  if (c != 'E') FAIL("echo mismatch");
  return fd;
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    putchar((unsigned char)*s < 32 ? ' ' : *s);
  }
  putchar('"');
}

/* ------------------------------------------------------------ up / down */

static int run_up(double secs) {
  char err[256] = "";
  double c0 = cpu_s();
  int fd = open_stream(err, sizeof err);
  if (fd < 0) goto fail;
  char *buf = malloc(BUF);
  memset(buf, 'u', BUF);
  char s = 'S';
  if (write_all(fd, &s, 1) < 0) { snprintf(err, sizeof err, "write: %s", strerror(errno)); goto fail; }
  double t0 = now_s();
  uint64_t sent = 0;
  while (now_s() - t0 < secs) {
    if (write_all(fd, buf, BUF) < 0) { snprintf(err, sizeof err, "write: %s", strerror(errno)); goto fail; }
    sent += BUF;
  }
  s = 'Z'; /* end marker: the sink answers its count */
  if (write_all(fd, &s, 1) < 0) { snprintf(err, sizeof err, "write: %s", strerror(errno)); goto fail; }
  unsigned char cb[8];
  if (read_n(fd, cb, 8) < 0) { snprintf(err, sizeof err, "reading the sink's count: %s", strerror(errno)); goto fail; }
  double t1 = now_s();
  uint64_t got = 0;
  for (int i = 0; i < 8; i++) got = got << 8 | cb[i];
  close(fd);
  if (got != sent) { snprintf(err, sizeof err, "sink counted %llu of %llu bytes", (unsigned long long)got, (unsigned long long)sent); goto fail; }
  printf("{\"mode\":\"up\",\"bytes\":%llu,\"seconds\":%.4f,\"mib_s\":%.1f,\"loadgen_cpu_pct\":%.0f,\"errors\":0}\n",
         (unsigned long long)got, t1 - t0, got / (t1 - t0) / 1048576.0, 100 * (cpu_s() - c0) / (t1 - t0));
  return 0;
fail:
  printf("{\"mode\":\"up\",\"errors\":1,\"error\":");
  json_str(err);
  printf("}\n");
  return 1;
}

static int run_down(double secs) {
  char err[256] = "";
  double c0 = cpu_s();
  int fd = open_stream(err, sizeof err);
  if (fd < 0) goto fail;
  char *buf = malloc(BUF);
  char s = 'R';
  if (write_all(fd, &s, 1) < 0) { snprintf(err, sizeof err, "write: %s", strerror(errno)); goto fail; }
  double t0 = now_s(), t1 = t0;
  uint64_t got = 0;
  while (t1 - t0 < secs) {
    ssize_t r = recv(fd, buf, BUF, 0);
    if (r <= 0) { snprintf(err, sizeof err, "read: %s", r == 0 ? "EOF" : strerror(errno)); goto fail; }
    got += (uint64_t)r;
    t1 = now_s();
  }
  close(fd);
  printf("{\"mode\":\"down\",\"bytes\":%llu,\"seconds\":%.4f,\"mib_s\":%.1f,\"loadgen_cpu_pct\":%.0f,\"errors\":0}\n",
         (unsigned long long)got, t1 - t0, got / (t1 - t0) / 1048576.0, 100 * (cpu_s() - c0) / (t1 - t0));
  return 0;
fail:
  printf("{\"mode\":\"down\",\"errors\":1,\"error\":");
  json_str(err);
  printf("}\n");
  return 1;
}

/* ------------------------------------------------------------------ par */

static pthread_barrier_t bar1, bar2;
static double par_deadline;
struct par_arg { uint64_t bytes; double end; int error; char err[200]; };

static void *par_thread(void *p) {
  struct par_arg *a = p;
  int fd = open_stream(a->err, sizeof a->err);
  if (fd < 0) a->error = 1;
  pthread_barrier_wait(&bar1);
  pthread_barrier_wait(&bar2);
  if (fd < 0) return NULL;
  char *buf = malloc(BUF);
  char s = 'R';
  if (write_all(fd, &s, 1) < 0) { a->error = 1; snprintf(a->err, sizeof a->err, "write: %s", strerror(errno)); }
  double t = now_s();
  while (!a->error && t < par_deadline) {
    ssize_t r = recv(fd, buf, BUF, 0);
    if (r <= 0) { a->error = 1; snprintf(a->err, sizeof a->err, "read: %s", r == 0 ? "EOF" : strerror(errno)); break; }
    a->bytes += (uint64_t)r;
    t = now_s();
  }
  a->end = t;
  close(fd);
  free(buf);
  return NULL;
}

static int run_par(int n, double secs) {
  pthread_t th[n];
  struct par_arg *args = calloc((size_t)n, sizeof *args);
  pthread_barrier_init(&bar1, NULL, (unsigned)n + 1);
  pthread_barrier_init(&bar2, NULL, (unsigned)n + 1);
  for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, par_thread, &args[i]);
  pthread_barrier_wait(&bar1);
  double c0 = cpu_s(), t0 = now_s();
  par_deadline = t0 + secs;
  pthread_barrier_wait(&bar2);
  uint64_t bytes = 0;
  double end = t0;
  int errors = 0;
  const char *first = "";
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    bytes += args[i].bytes;
    if (args[i].end > end) end = args[i].end;
    if (args[i].error && !errors++) first = args[i].err;
  }
  printf("{\"mode\":\"par\",\"streams\":%d,\"bytes\":%llu,\"seconds\":%.4f,\"mib_s\":%.1f,\"loadgen_cpu_pct\":%.0f,\"errors\":%d,\"error\":",
         n, (unsigned long long)bytes, end - t0, bytes / (end - t0) / 1048576.0, 100 * (cpu_s() - c0) / (end - t0), errors);
  json_str(first);
  printf("}\n");
  return errors ? 1 : 0;
}

/* ------------------------------------------------------------------ lat */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double q) {
  if (n == 0) return 0;
  int i = (int)ceil(q * n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int run_lat(int count, int warmup, double max_s) {
  double *ms = malloc(sizeof(double) * (size_t)(count > 0 ? count : 1));
  int n = 0, errors = 0;
  char err[256] = "", first[256] = "";
  double start = now_s();
  for (int i = 0; i < warmup + count && now_s() - start < max_s; i++) {
    double t0 = now_s();
    int fd = open_echo1(err, sizeof err);
    double t1 = now_s();
    if (fd < 0) {
      if (!errors++) snprintf(first, sizeof first, "%s", err);
      continue;
    }
    close(fd);
    if (i >= warmup) ms[n++] = (t1 - t0) * 1000;
  }
  double sum = 0;
  for (int i = 0; i < n; i++) sum += ms[i];
  qsort(ms, (size_t)n, sizeof *ms, cmp_d);
  printf("{\"mode\":\"lat\",\"count\":%d,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f,\"errors\":%d,\"error\":",
         n, pct(ms, n, .5), pct(ms, n, .9), pct(ms, n, .99), n ? ms[n - 1] : 0, n ? sum / n : 0, errors);
  json_str(first);
  printf("}\n");
  return errors ? 1 : 0;
}

/* ----------------------------------------------------------------- rate */

static double rate_deadline, rate_from;
/* per worker: the first RATE_SAMPLES connection times (ms) go into the p50/p99/max */
#define RATE_SAMPLES 65536
struct rate_arg { long ok, errors; double end; char err[200]; double *ms; int n; };

static void *rate_thread(void *p) {
  struct rate_arg *a = p;
  char msg[64], back[64], err[200];
  memset(msg, 'x', sizeof msg);
  msg[0] = 'E';
  while (now_s() < rate_deadline) {
    double t0 = now_s();
    int fd = open_stream(err, sizeof err);
    if (fd >= 0) {
      if (write_all(fd, msg, sizeof msg) < 0) snprintf(err, sizeof err, "write: %s", strerror(errno)), close(fd), fd = -1;
      else if (read_n(fd, back, sizeof back) < 0) snprintf(err, sizeof err, "read: %s", strerror(errno)), close(fd), fd = -1;
      else if (memcmp(msg, back, sizeof msg)) snprintf(err, sizeof err, "echo mismatch"), close(fd), fd = -1;
    }
    if (fd < 0) {
      if (!a->errors++) snprintf(a->err, sizeof a->err, "%s", err);
      usleep(1000);
      continue;
    }
    close(fd);
    if (t0 < rate_from) continue; /* warming up */
    if (a->n < RATE_SAMPLES) a->ms[a->n++] = (now_s() - t0) * 1000;
    a->ok++;
  }
  a->end = now_s();
  return NULL;
}

static int run_rate(int n, double secs, double warm) {
  pthread_t th[n];
  struct rate_arg *args = calloc((size_t)n, sizeof *args);
  for (int i = 0; i < n; i++) args[i].ms = malloc(sizeof(double) * RATE_SAMPLES);
  rate_from = now_s() + warm;
  rate_deadline = rate_from + secs;
  for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, rate_thread, &args[i]);
  for (double left = rate_from - now_s(); left > 0; left = rate_from - now_s()) usleep((useconds_t)(left * 1e6));
  double c0 = cpu_s(), t0 = rate_from;
  long ok = 0, errors = 0;
  double end = t0;
  const char *first = "";
  double *ms = malloc(sizeof(double) * RATE_SAMPLES * (size_t)n);
  int m = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    memcpy(ms + m, args[i].ms, sizeof(double) * (size_t)args[i].n);
    m += args[i].n;
    ok += args[i].ok;
    if (args[i].errors && !errors) first = args[i].err;
    errors += args[i].errors;
    if (args[i].end > end) end = args[i].end;
  }
  qsort(ms, (size_t)m, sizeof *ms, cmp_d);
  printf("{\"mode\":\"rate\",\"workers\":%d,\"ok\":%ld,\"seconds\":%.4f,\"conn_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"loadgen_cpu_pct\":%.0f,\"errors\":%ld,\"error\":",
         n, ok, end - t0, ok / (end - t0), pct(ms, m, .5), pct(ms, m, .99), m ? ms[m - 1] : 0,
         100 * (cpu_s() - c0) / (end - t0), errors);
  json_str(first);
  printf("}\n");
  return errors ? 1 : 0;
}

/* ---------------------------------------------------------------- burst */

static pthread_barrier_t burst_bar;
struct burst_arg { double ms; int ok; char err[200]; };

static void *burst_thread(void *p) {
  struct burst_arg *a = p;
  pthread_barrier_wait(&burst_bar);
  double t0 = now_s();
  int fd = open_echo1(a->err, sizeof a->err);
  a->ms = (now_s() - t0) * 1000;
  a->ok = fd >= 0;
  if (fd >= 0) close(fd);
  return NULL;
}

static int run_burst(int n) {
  if (n < 1) n = 1;
  pthread_t *th = malloc(sizeof(pthread_t) * (size_t)n);
  struct burst_arg *args = calloc((size_t)n, sizeof *args);
  double *ms = malloc(sizeof(double) * (size_t)n);
  pthread_barrier_init(&burst_bar, NULL, (unsigned)n + 1);
  int started = 0;
  for (int i = 0; i < n; i++) {
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&th[i], &at, burst_thread, &args[i]) != 0) {
      pthread_attr_destroy(&at);
      fprintf(stderr, "burst: cannot start thread %d\n", i);
      return 2; /* the barrier would never open: exit, the alarm is not needed */
    }
    pthread_attr_destroy(&at);
    started++;
  }
  double t0 = now_s();
  pthread_barrier_wait(&burst_bar);
  int ok = 0, errors = 0;
  const char *first = "";
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    if (args[i].ok) ms[ok++] = args[i].ms;
    else if (!errors++) first = args[i].err;
  }
  double wall = now_s() - t0;
  qsort(ms, (size_t)ok, sizeof *ms, cmp_d);
  printf("{\"mode\":\"burst\",\"streams\":%d,\"ok\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"min_ms\":%.3f,\"wall_ms\":%.3f,\"errors\":%d,\"error\":",
         n, ok, pct(ms, ok, .5), pct(ms, ok, .99), ok ? ms[ok - 1] : 0, ok ? ms[0] : 0, wall * 1000, errors);
  json_str(first);
  printf("}\n");
  return errors ? 1 : 0;
}

/* ----------------------------------------------------------------- hold */

static int *hold_fds;
static atomic_int hold_next;
static int hold_limit;
static atomic_int hold_errors;
static char hold_err[256];
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;

static void *hold_thread(void *p) {
  (void)p;
  char err[256];
  for (;;) {
    int i = atomic_fetch_add(&hold_next, 1);
    if (i >= hold_limit) return NULL;
    hold_fds[i] = open_echo1(err, sizeof err);
    if (hold_fds[i] < 0 && atomic_fetch_add(&hold_errors, 1) == 0) {
      pthread_mutex_lock(&hold_mu);
      snprintf(hold_err, sizeof hold_err, "%s", err);
      pthread_mutex_unlock(&hold_mu);
    }
  }
}

static int run_hold(const char *stages, int conc) {
  int counts[16], ns = 0, max = 0;
  for (const char *s = stages; *s && ns < 16;) {
    counts[ns] = atoi(s);
    if (counts[ns] > max) max = counts[ns];
    ns++;
    s = strchr(s, ',');
    if (!s) break;
    s++;
  }
  hold_fds = malloc(sizeof(int) * (size_t)max);
  for (int i = 0; i < max; i++) hold_fds[i] = -1;
  char line[64];
  for (int st = 0; st < ns; st++) {
    double t0 = now_s();
    hold_limit = counts[st];
    atomic_store(&hold_next, st == 0 ? 0 : counts[st - 1]);
    pthread_t th[conc];
    for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, hold_thread, NULL);
    for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
    int open = 0;
    for (int i = 0; i < hold_limit; i++) open += hold_fds[i] >= 0;
    printf("{\"mode\":\"hold\",\"stage\":%d,\"open\":%d,\"errors\":%d,\"seconds\":%.3f,\"error\":", counts[st], open,
           atomic_load(&hold_errors), now_s() - t0);
    json_str(hold_err);
    printf("}\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) break;
  }
  for (int i = 0; i < max; i++)
    if (hold_fds[i] >= 0) close(hold_fds[i]);
  return atomic_load(&hold_errors) ? 1 : 0;
}

/* ----------------------------------------------------------------- fair */

static atomic_int fair_stop;
static _Atomic unsigned long long fair_bytes;
struct fair_arg { int error; char err[200]; };

/* One bulk download stream until fair_stop; bytes into fair_bytes. */
static void *fair_bulk(void *p) {
  struct fair_arg *a = p;
  int fd = open_stream(a->err, sizeof a->err);
  if (fd < 0) { a->error = 1; return NULL; }
  char *buf = malloc(BUF);
  char s = 'R';
  if (write_all(fd, &s, 1) < 0) { a->error = 1; snprintf(a->err, sizeof a->err, "write: %s", strerror(errno)); }
  while (!a->error && !atomic_load(&fair_stop)) {
    ssize_t r = recv(fd, buf, BUF, 0);
    if (r <= 0) { a->error = 1; snprintf(a->err, sizeof a->err, "bulk read: %s", r == 0 ? "EOF" : strerror(errno)); break; }
    atomic_fetch_add(&fair_bytes, (unsigned long long)r);
  }
  close(fd);
  free(buf);
  return NULL;
}

static void sleep_until(double t) {
  double d = t - now_s();
  if (d <= 0) return;
  struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (time_t)d) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* 1-byte echoes on `fd` every `interval` s for `secs` s; times in ms into ms[*n] (at most cap). */
static int fair_ping(int fd, double secs, double interval, double *ms, int *n, int cap, char *err, size_t errlen) {
  double start = now_s(), next = start;
  while (now_s() - start < secs && *n < cap) {
    sleep_until(next);
    double t0 = now_s();
    char c = 'x';
    if (write_all(fd, &c, 1) < 0) { snprintf(err, errlen, "echo write: %s", strerror(errno)); return -1; }
    if (read_n(fd, &c, 1) < 0) { snprintf(err, errlen, "echo read: %s", strerror(errno)); return -1; }
    double t1 = now_s();
    ms[(*n)++] = (t1 - t0) * 1000;
    next = t0 + interval > t1 ? t0 + interval : t1;
  }
  return 0;
}

static void json_pcts(const char *k, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  printf("\"%s_count\":%d,\"%s_p50_ms\":%.3f,\"%s_p90_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_max_ms\":%.3f,", k, n, k,
         pct(v, n, .5), k, pct(v, n, .9), k, pct(v, n, .99), k, n ? v[n - 1] : 0);
}

static int run_fair(int streams, double idle_s, double warm_s, double load_s, double interval, int count, double fresh_s) {
  int cap = (int)((idle_s > load_s ? idle_s : load_s) / interval) + 2;
  double *idle = malloc(sizeof(double) * (size_t)cap), *load = malloc(sizeof(double) * (size_t)cap);
  double *fresh = malloc(sizeof(double) * (size_t)(count > 0 ? count : 1));
  int ni = 0, nl = 0, nf = 0, errors = 0, started = 0;
  char err[256] = "";
  pthread_t th[streams > 0 ? streams : 1];
  struct fair_arg *args = calloc((size_t)(streams > 0 ? streams : 1), sizeof *args);
  double bulk_s = 0;
  unsigned long long bulk = 0;
  int fd = open_echo1(err, sizeof err);
  if (fd < 0) { errors++; goto out; }
  if (fair_ping(fd, idle_s, interval, idle, &ni, cap, err, sizeof err) < 0) { errors++; goto out; }
  for (; started < streams; started++) pthread_create(&th[started], NULL, fair_bulk, &args[started]);
  sleep_until(now_s() + warm_s);
  double t0 = now_s();
  unsigned long long b0 = atomic_load(&fair_bytes);
  if (fair_ping(fd, load_s, interval, load, &nl, cap, err, sizeof err) < 0) { errors++; goto out; }
  double f0 = now_s();
  char ferr[200];
  while (nf < count && now_s() - f0 < fresh_s) {
    double c0 = now_s();
    int cfd = open_echo1(ferr, sizeof ferr);
    if (cfd < 0) {
      if (!errors++) snprintf(err, sizeof err, "fresh: %s", ferr);
      break;
    }
    close(cfd);
    fresh[nf++] = (now_s() - c0) * 1000;
  }
  bulk = atomic_load(&fair_bytes) - b0;
  bulk_s = now_s() - t0;
out:
  atomic_store(&fair_stop, 1);
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    if (args[i].error && !errors++) snprintf(err, sizeof err, "%s", args[i].err);
  }
  if (fd >= 0) close(fd);
  printf("{\"mode\":\"fair\",\"streams\":%d,", streams);
  json_pcts("idle", idle, ni);
  json_pcts("load", load, nl);
  json_pcts("fresh", fresh, nf);
  printf("\"bulk_bytes\":%llu,\"bulk_seconds\":%.3f,\"bulk_mib_s\":%.2f,\"errors\":%d,\"error\":", bulk, bulk_s,
         bulk_s > 0 ? bulk / bulk_s / 1048576.0 : 0, errors);
  json_str(err);
  printf("}\n");
  return errors ? 1 : 0;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen probe|up|down|par|lat|rate|burst|hold|fair --target H:P [--socks H:P] [options]\n");
    return 2;
  }
  const char *mode = argv[1], *stages = "1000";
  double secs = 2, max_s = 600, warm_s = 0, idle_s = 3, interval_ms = 10, fresh_s = 10;
  int streams = 16, count = 500, warmup = 20, workers = 32, conc = 64, have_target = 0;
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "loadgen: %s needs a value\n", k); return 2; }
    i++;
    if (!strcmp(k, "--target")) { if (parse_addr(v, &target_addr)) goto bad; have_target = 1; }
    else if (!strcmp(k, "--socks")) { if (parse_addr(v, &socks_addr)) goto bad; use_socks = 1; }
    else if (!strcmp(k, "--user")) user = v;
    else if (!strcmp(k, "--pass")) pass = v;
    else if (!strcmp(k, "--seconds")) secs = atof(v);
    else if (!strcmp(k, "--streams")) streams = atoi(v);
    else if (!strcmp(k, "--count")) count = atoi(v);
    else if (!strcmp(k, "--warmup")) warmup = atoi(v);
    else if (!strcmp(k, "--warm-seconds")) warm_s = atof(v);
    else if (!strcmp(k, "--workers")) workers = atoi(v);
    else if (!strcmp(k, "--stages")) stages = v;
    else if (!strcmp(k, "--conc")) conc = atoi(v);
    else if (!strcmp(k, "--timeout")) op_timeout = atof(v);
    else if (!strcmp(k, "--max-seconds")) max_s = atof(v);
    else if (!strcmp(k, "--idle-seconds")) idle_s = atof(v);
    else if (!strcmp(k, "--interval-ms")) interval_ms = atof(v);
    else if (!strcmp(k, "--fresh-seconds")) fresh_s = atof(v);
    else { fprintf(stderr, "loadgen: unknown option %s\n", k); return 2; }
    continue;
  bad:
    fprintf(stderr, "loadgen: %s: bad address %s (want IPv4:port)\n", k, v);
    return 2;
  }
  if (!have_target) { fprintf(stderr, "loadgen: --target is required\n"); return 2; }
  if (user && !pass) pass = "";
  signal(SIGPIPE, SIG_IGN);
  alarm((unsigned)ceil(max_s)); /* bounded in time whatever happens */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(mode, "probe")) {
    char err[256];
    int fd = open_echo1(err, sizeof err);
    if (fd < 0) { fprintf(stderr, "probe: %s\n", err); return 1; }
    close(fd);
    return 0;
  }
  if (!strcmp(mode, "up")) return run_up(secs);
  if (!strcmp(mode, "down")) return run_down(secs);
  if (!strcmp(mode, "par")) return run_par(streams, secs);
  if (!strcmp(mode, "lat")) return run_lat(count, warmup, max_s - 1);
  if (!strcmp(mode, "rate")) return run_rate(workers, secs, warm_s);
  if (!strcmp(mode, "hold")) return run_hold(stages, conc);
  if (!strcmp(mode, "burst")) return run_burst(streams);
  if (!strcmp(mode, "fair")) {
    if (streams < 0 || streams > 1000 || interval_ms < 1 || secs <= 0 || idle_s <= 0 || count < 1) {
      fprintf(stderr, "loadgen fair: wants 0..1000 streams, --interval-ms >= 1, positive seconds, --count >= 1\n");
      return 2;
    }
    return run_fair(streams, idle_s, warm_s, secs, interval_ms / 1000, count, fresh_s);
  }
  fprintf(stderr, "loadgen: unknown mode %s\n", mode);
  return 2;
}
