/*
 * An open-loop HTTP/1.1 load generator: the benchmarks' client (bench/loadgen.py builds
 * and runs it).
 *
 * Why C: the generator shares the machine's cores with the director. The earlier one, in
 * Python with gevent, took a core of its own at 7,000 requests/s, so an overload at four
 * times the director's ceiling measured the generator, not the director. This one spends
 * a few microseconds per request, on one thread, with epoll.
 *
 * What it does (the same contract as the Python generator it replaces):
 *  1. request k is due at start + k / rate, whatever the server does (open loop), and its
 *     latency counts from that intended time, so a stalled server shows in the figures
 *     instead of slowing the generator down (coordinated omission);
 *  2. connections are kept alive and reused; a request that finds none idle opens one, up
 *     to --max-connections; beyond that the request is not sent and is counted dropped;
 *  3. a request whose response headers have not arrived --header-timeout seconds after it
 *     was due is a client time-out; a kept-alive connection the server had closed is
 *     retried once on a fresh one; redirects are not followed;
 *  4. a 429 without Retry-After is recorded as status -429;
 *  5. its own shortfall is reported: the rate at which it actually sent, and how late the
 *     sends were (send lag), so a saturated generator is visible.
 *
 * Output: one line per request on --out ("intended_offset latency status error", seconds,
 * error "-" when none), and one JSON line of totals on stdout.
 *
 * Usage: openloop --port P --rate R --duration S (--path-template T | --paths FILE)
 *        [--host 127.0.0.1] [--max-connections 6000] [--header-timeout 10]
 *        [--extra-header "Name: value"] --out FILE
 * A path template holds one %d, replaced by the request's index.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 65536
#define EVENTS 1024

enum state { FREE, CONNECTING, SENDING, READING, IDLE };

struct conn {
    int fd;
    enum state state;
    int fresh;          /* opened for the request it carries */
    long request;       /* index, -1 when none */
    double intended;    /* the request's due time */
    char *out;          /* the request's bytes */
    int out_len, out_sent;
    char *in;           /* response bytes read so far */
    int in_len;
    long body_left;     /* -1 until the headers are read */
    int status, keep, retry_after;
    unsigned events;    /* what epoll watches for now */
    struct conn *next_idle;
};

struct record {
    double intended, latency;
    int status;
    const char *error;
};

static const char *host = "127.0.0.1";
static int port;
static double rate, duration, header_timeout = 10.0;
static long max_connections = 6000;
static const char *path_template, *paths_file, *out_file;
static char extra_headers[4096];
static char **paths;

static struct conn *conns;
static long conn_count;          /* slots used in conns */
static long open_connections;
static struct conn *idle_head;
static struct record *records;
static char *done;               /* per request: recorded */
static long recorded, in_flight;
static double start;
static int epoll_fd;
static struct sockaddr_in address;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *message) {
    fprintf(stderr, "openloop: %s\n", message);
    exit(2);
}

static void record(struct conn *c, int status, const char *error) {
    struct record *r = &records[c->request];
    r->intended = c->intended - start;
    r->latency = now() - c->intended;
    r->status = status;
    r->error = error;
    done[c->request] = 1;
    recorded++;
    in_flight--;
    c->request = -1;
}

static void close_conn(struct conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        open_connections--;
    }
    c->fd = -1;
    c->state = FREE;
}

static struct conn *free_slot(void) {
    for (long i = 0; i < conn_count; i++)
        if (conns[i].state == FREE) return &conns[i];
    if (conn_count >= max_connections) return NULL;
    return &conns[conn_count++];
}

static void watch(struct conn *c, unsigned events, int op) {
    if (op == EPOLL_CTL_MOD && c->events == events) return;
    struct epoll_event event = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll_fd, op, c->fd, &event) < 0) die("epoll_ctl");
    c->events = events;
}

static const char *build_request(long index, int *length) {
    static char buffer[8192];
    char path[4096];
    if (paths) {
        snprintf(path, sizeof path, "%s", paths[index]);
    } else {
        snprintf(path, sizeof path, path_template, index);
    }
    *length = snprintf(buffer, sizeof buffer,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                       "User-Agent: pelican-client/7.20.0 bench\r\n%s\r\n",
                       path, host, port, extra_headers);
    return buffer;
}

static void send_more(struct conn *c);

static int open_conn(struct conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    open_connections++;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        int error = errno;
        close(fd);
        c->fd = -1;
        open_connections--;
        return -error;
    }
    c->state = CONNECTING;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

static const char *errno_kind(int error) {
    static char kinds[64][24];
    if (error == ECONNREFUSED) return "refused";
    if (error == ECONNRESET || error == EPIPE) return "reset";
    int slot = error & 63;
    snprintf(kinds[slot], sizeof kinds[slot], "oserror:%d", error);
    return kinds[slot];
}

/* Start request `c->request` on connection `c`, which is open or being opened. */
static void begin(struct conn *c) {
    int length;
    const char *bytes = build_request(c->request, &length);
    c->out = realloc(c->out, length);
    memcpy(c->out, bytes, length);
    c->out_len = length;
    c->out_sent = 0;
    c->in_len = 0;
    c->body_left = -1;
    c->status = 0;
    c->keep = 1;
    c->retry_after = 0;
    if (c->state != CONNECTING) {
        c->state = SENDING;
        send_more(c);
    }
}

/* Carry request `index` (due at `intended`) on a fresh connection; 0 when no slot. */
static int dispatch_fresh(long index, double intended, struct conn *slot) {
    struct conn *c = slot ? slot : free_slot();
    if (c == NULL) return 0;
    c->request = index;
    c->intended = intended;
    c->fresh = 1;
    int error = open_conn(c);
    if (error < 0) {
        c->state = FREE;
        c->request = index;
        record(c, 0, errno_kind(-error));
        return 1;
    }
    begin(c);
    return 1;
}

static int dispatch(long index, double intended) {
    in_flight++;
    while (idle_head) {
        struct conn *c = idle_head;
        idle_head = c->next_idle;
        if (c->state != IDLE) continue; /* closed while idle */
        c->request = index;
        c->intended = intended;
        c->fresh = 0;
        begin(c);
        return 1;
    }
    if (dispatch_fresh(index, intended, NULL)) return 1;
    in_flight--;
    return 0;
}

/* The connection broke before its answer: retry a reused one once, else record. */
static void broken(struct conn *c, int error) {
    long index = c->request;
    double intended = c->intended;
    int retry = !c->fresh && c->in_len == 0 && (error == ECONNRESET || error == EPIPE || error == 0);
    close_conn(c);
    if (index < 0) return;
    if (retry) {
        c->request = index;
        c->intended = intended;
        c->fresh = 1;
        int failed = open_conn(c);
        if (failed == 0) {
            begin(c);
            return;
        }
        record(c, 0, errno_kind(-failed));
        return;
    }
    c->request = index;
    record(c, 0, errno_kind(error ? error : ECONNRESET));
}

static void send_more(struct conn *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) {
                watch(c, EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            broken(c, errno);
            return;
        }
        c->out_sent += (int)n;
    }
    c->state = READING;
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
}

static void finish(struct conn *c) {
    int status = c->status;
    if (status == 429 && !c->retry_after) status = -429;
    record(c, status, NULL);
    if (c->keep) {
        c->state = IDLE;
        c->in_len = 0;
        c->next_idle = idle_head;
        idle_head = c;
    } else {
        close_conn(c);
    }
}

/* Parse the headers in c->in[0..end): status, Content-Length, Connection, Retry-After. */
static void parse_head(struct conn *c, int end) {
    c->in[end] = '\0';
    char *line = c->in;
    char *space = strchr(line, ' ');
    c->status = space ? atoi(space + 1) : 0;
    long length = 0;
    for (char *next = strstr(line, "\r\n"); next && next < c->in + end; next = strstr(line, "\r\n")) {
        line = next + 2;
        if (strncasecmp(line, "content-length:", 15) == 0) length = atol(line + 15);
        else if (strncasecmp(line, "connection:", 11) == 0) {
            char *value = line + 11;
            while (*value == ' ') value++;
            if (strncasecmp(value, "close", 5) == 0) c->keep = 0;
        } else if (strncasecmp(line, "retry-after:", 12) == 0) c->retry_after = 1;
    }
    c->body_left = length;
}

static void read_more(struct conn *c) {
    for (;;) {
        if (c->in == NULL) c->in = malloc(MAX_HEAD + 1);
        int room = MAX_HEAD - c->in_len;
        if (room <= 0) {
            broken(c, EMSGSIZE);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n < 0) {
            if (errno == EAGAIN) return;
            broken(c, errno);
            return;
        }
        if (n == 0) {
            broken(c, 0);
            return;
        }
        int before = c->in_len;
        c->in_len += (int)n;
        if (c->body_left < 0) {
            c->in[c->in_len] = '\0';
            int from = before > 3 ? before - 3 : 0;
            char *end = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
            if (end == NULL) continue;
            int head = (int)(end - c->in);
            int after = c->in_len - head - 4;
            parse_head(c, head);
            c->body_left -= after;
            c->in_len = 0;
        } else {
            c->body_left -= n;
            c->in_len = 0;
        }
        if (c->body_left <= 0) {
            finish(c);
            return;
        }
    }
}

static void on_event(struct conn *c, unsigned events) {
    if (c->state == IDLE) { /* the server closed it, or sent what nobody asked for */
        close_conn(c);
        return;
    }
    if (c->state == CONNECTING) {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error) {
            long index = c->request;
            close_conn(c);
            c->request = index;
            record(c, 0, errno_kind(error));
            return;
        }
        c->state = SENDING;
        send_more(c);
        return;
    }
    if (c->state == SENDING && (events & EPOLLOUT)) {
        send_more(c);
        return;
    }
    if (c->state == READING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_more(c);
}

static void expire(double at) {
    for (long i = 0; i < conn_count; i++) {
        struct conn *c = &conns[i];
        if (c->request >= 0 && c->state != FREE && c->state != IDLE &&
            at - c->intended > header_timeout) {
            long index = c->request;
            close_conn(c);
            c->request = index;
            record(c, 0, "timeout");
        }
    }
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void read_paths(long total) {
    FILE *file = fopen(paths_file, "r");
    if (!file) die("cannot open --paths");
    paths = calloc(total, sizeof *paths);
    char *line = NULL;
    size_t size = 0;
    long i = 0;
    while (i < total && getline(&line, &size, file) > 0) {
        line[strcspn(line, "\r\n")] = '\0';
        paths[i++] = strdup(line);
    }
    free(line);
    fclose(file);
    if (i < total) die("--paths has fewer lines than rate x duration");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc) die("every flag takes a value");
        const char *value = argv[++i];
        if (!strcmp(flag, "--host")) host = value;
        else if (!strcmp(flag, "--port")) port = atoi(value);
        else if (!strcmp(flag, "--rate")) rate = atof(value);
        else if (!strcmp(flag, "--duration")) duration = atof(value);
        else if (!strcmp(flag, "--header-timeout")) header_timeout = atof(value);
        else if (!strcmp(flag, "--max-connections")) max_connections = atol(value);
        else if (!strcmp(flag, "--path-template")) path_template = value;
        else if (!strcmp(flag, "--paths")) paths_file = value;
        else if (!strcmp(flag, "--out")) out_file = value;
        else if (!strcmp(flag, "--extra-header")) {
            size_t used = strlen(extra_headers);
            snprintf(extra_headers + used, sizeof extra_headers - used, "%s\r\n", value);
        } else die("unknown flag");
    }
    if (port <= 0 || rate <= 0 || duration <= 0 || !out_file || (!path_template && !paths_file))
        die("--port, --rate, --duration, --out and a path source are required");
    long total = (long)(rate * duration);
    if (paths_file) read_paths(total);
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) die("--host must be an IPv4 address");

    conns = calloc(max_connections, sizeof *conns);
    for (long i = 0; i < max_connections; i++) {
        conns[i].fd = -1;
        conns[i].request = -1;
    }
    records = calloc(total > 0 ? total : 1, sizeof *records);
    double *lags = calloc(total > 0 ? total : 1, sizeof *lags);
    char *sent = calloc(total > 0 ? total : 1, 1);
    done = calloc(total > 0 ? total : 1, 1);
    epoll_fd = epoll_create1(0);
    struct epoll_event events[EVENTS];

    start = now() + 0.05;
    long next = 0, dropped = 0, dispatched = 0;
    double sent_in = 0, last_expiry = 0, finished_sending = 0;
    for (;;) {
        double t = now();
        while (next < total && start + next / rate <= t) {
            double intended = start + next / rate;
            lags[dispatched++] = t - intended;
            if (dispatch(next, intended)) sent[next] = 1;
            else dropped++;
            next++;
        }
        if (next == total && finished_sending == 0) {
            finished_sending = now();
            sent_in = finished_sending - start;
        }
        if (next == total && in_flight == 0) break;
        if (finished_sending && t - finished_sending > header_timeout + 5) break;
        if (t - last_expiry > 0.05) {
            expire(t);
            last_expiry = t;
        }
        double wait = next < total ? start + next / rate - now() : 0.05;
        if (wait > 0.05) wait = 0.05;
        if (wait < 0) wait = 0;
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
        int n = epoll_pwait2(epoll_fd, events, EVENTS, &timeout, NULL);
        for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
    }

    FILE *out = fopen(out_file, "w");
    if (!out) die("cannot write --out");
    long timeouts = 0;
    for (long i = 0; i < total; i++) {
        if (!sent[i]) continue;
        struct record *r = &records[i];
        if (!done[i]) { /* never finished: abandoned after the final wait */
            r->intended = i / rate;
            r->latency = header_timeout;
            r->error = "timeout";
        }
        if (r->error && !strcmp(r->error, "timeout")) timeouts++;
        fprintf(out, "%.6f %.6f %d %s\n", r->intended, r->latency, r->status,
                r->error ? r->error : "-");
    }
    fclose(out);
    qsort(lags, dispatched, sizeof *lags, compare);
    double p99 = dispatched ? lags[(long)(dispatched * 0.99)] : 0;
    double lag_max = dispatched ? lags[dispatched - 1] : 0;
    printf("{\"sent\": %ld, \"dropped\": %ld, \"sent_in\": %.6f, \"achieved_rate\": %.3f, "
           "\"send_lag_p99\": %.6f, \"send_lag_max\": %.6f, \"timeouts\": %ld}\n",
           total - dropped, dropped, sent_in, sent_in > 0 ? (total - dropped) / sent_in : 0.0,
           p99, lag_max, timeouts);
    return 0;
}
