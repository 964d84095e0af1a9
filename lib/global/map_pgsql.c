/* map_pgsql.c: the pgsql: table type, pgsql:/etc/tern/FILE with the query
 * file of pgsql_table(5): hosts, user, password, dbname, query (or the
 * older select_field, table, where_field, additional_conditions and
 * select_function), result_format, domain, expansion_limit; and Tern's
 * connect_timeout, query_timeout and retry_interval.
 *
 * One connection per table and process, opened at the first lookup and
 * kept for the next ones. A server that cannot be reached, a connection
 * that breaks, a query that fails or takes longer than query_timeout make
 * the lookup a temporary error (-1), never "not found": mail waits. A
 * reused connection that turns out to be broken (the server restarted) is
 * reopened at once and the query asked again; a server that cannot be
 * reached is left alone for retry_interval seconds while the others in
 * hosts are tried. */
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chroot.h"
#include "config.h"
#include "log.h"
#include "map_query.h"
#include "maps_impl.h"
#include "util.h"

#define PGSQL_QUERY_LIMIT (64 * 1024)

static const char *const pgsql_params[] = {
    "hosts", "user", "password", "dbname", "query", "result_format", "domain",
    "expansion_limit", "select_field", "table", "where_field", "additional_conditions",
    "select_function", "connect_timeout", "query_timeout", "retry_interval", NULL,
};

struct pg_host {
    char *label;           /* as written in hosts, for logs */
    char *uri;             /* postgresql://... or NULL */
    char *host, *port;     /* host name, address or socket directory; port or NULL */
    PGconn *conn;
    bool reused;           /* the connection has answered a query before */
    time_t dead_until;
};

struct pgsql {
    const char *spec;
    char *user, *password, *dbname;
    struct map_sql sql;
    long connect_timeout, query_timeout, retry_interval;
    struct pg_host *hosts;
    size_t nhosts, current;
};

/* ---- quoting ---- */

struct pg_quote_ctx {
    PGconn *conn;
    bool bad_text;         /* not valid in the client encoding */
};

static int pg_quote(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    struct pg_quote_ctx *q = ctx;
    if (n > PGSQL_QUERY_LIMIT)
        return -1;
    char *buf = xmalloc(2 * n + 1);
    int error = 0;
    size_t len = PQescapeStringConn(q->conn, buf, s, n, &error);
    int rc = 0;
    if (error) {
        q->bad_text = true;
        rc = -1;
    } else {
        rc = sb_append(out, buf, len);
    }
    free(buf);
    return rc;
}

/* The key as a query: 1 with sql set, 0 when the template suppresses it
 * (no query, "not found"), -1 on error. conn NULL: only decide 1 or 0. */
static int pg_query_text(struct pgsql *p, PGconn *conn, const char *key, struct strbuf *sql)
{
    struct strbuf err = STRBUF_INIT(512);
    struct pg_quote_ctx q = { conn, false };
    sb_reset(sql);
    int rc = map_expand(sql, p->sql.query, MAP_EXPAND_QUERY, key, NULL, conn ? pg_quote : NULL,
                        &q, &err);
    if (rc < 0 && q.bad_text) {
        msg_warn("%s: key \"%.100s\" is not valid UTF-8 text: not found", p->spec, key);
        rc = 0;
    } else if (rc < 0) {
        msg_warn("%s: cannot make the query for \"%.100s\": %s", p->spec, key, sb_str(&err));
    }
    sb_free(&err);
    return rc;
}

/* ---- connections ---- */

/* libpq's messages end with a newline; logs want one line. */
static const char *pg_error(PGconn *conn)
{
    static char buf[512];
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    size_t n = strcspn(msg, "\n");
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, msg, n);
    buf[n] = 0;
    return buf;
}

static void pg_disconnect(struct pg_host *h)
{
    if (h->conn)
        PQfinish(h->conn);
    h->conn = NULL;
    h->reused = false;
}

/* Whether the server is named by an IP address, which needs no file
 * (resolv.conf, hosts, a socket) that a chroot hides. */
static bool pg_host_is_address(const struct pg_host *h)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return !h->uri && h->host
           && (inet_pton(AF_INET, h->host, addr) == 1 || inet_pton(AF_INET6, h->host, addr) == 1);
}

/* The server's notices (a query's RAISE NOTICE, warnings) go to the log,
 * not to the standard error that libpq would write them to. */
static void pg_notice(void *arg, const char *message)
{
    msg_info("%s: PostgreSQL server says: %.*s", (const char *)arg,
             (int)strcspn(message, "\n"), message);
}

static int pg_connect(struct pgsql *p, struct pg_host *h)
{
    const char *keys[12], *values[12];
    char timeout[32];
    int n = 0;
    snprintf(timeout, sizeof(timeout), "%ld", p->connect_timeout);
#define KV(k, v) do { if (v) { keys[n] = (k); values[n] = (v); n++; } } while (0)
    KV("user", p->user);
    KV("password", p->password);
    const char *timeout_text = timeout;
    KV("connect_timeout", timeout_text);
    /* Kerberos would look for credentials on every connection, in files a
     * chrooted daemon cannot see; a URI in hosts can still ask for it. */
    KV("gssencmode", "disable");
    KV("client_encoding", "UTF8");
    KV("application_name", "tern");
    if (h->uri) {
        KV("dbname", h->uri);      /* expanded: the URI's settings win */
    } else {
        KV("host", h->host);
        KV("port", h->port);
        KV("dbname", p->dbname);
    }
#undef KV
    keys[n] = values[n] = NULL;
    h->conn = PQconnectdbParams(keys, values, h->uri != NULL);
    if (h->conn && PQstatus(h->conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(h->conn, pg_notice, (void *)p->spec);
        h->reused = false;
        return 0;
    }
    msg_warn("%s: cannot connect to PostgreSQL server %s: %s%s", p->spec, h->label,
             pg_error(h->conn),
             chroot_active() && !pg_host_is_address(h)
                 ? " (this service runs chrooted in queue_directory: name the server by IP "
                   "address, not by host name or UNIX socket, or set chroot = n for it in "
                   "master.cf)" : "");
    pg_disconnect(h);
    h->dead_until = time(NULL) + p->retry_interval;
    return -1;
}

/* ---- queries ---- */

/* PG_TIMEOUT: no answer within query_timeout; the connection, with its
 * query still running, is closed (as for PG_BROKEN), but asking again at
 * once would only wait as long again. */
enum { PG_OK = 0, PG_QUERY_FAILED = -1, PG_BROKEN = -2, PG_TIMEOUT = -3 };

/* Milliseconds left until deadline (CLOCK_MONOTONIC), at least 0. */
static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
}

/* Wait for the next result within the deadline: the result, or NULL at
 * the end (*state PG_OK) or on failure (*state PG_BROKEN). */
static PGresult *pg_next_result(struct pgsql *p, struct pg_host *h,
                                const struct timespec *deadline, int *state)
{
    *state = PG_OK;
    while (PQisBusy(h->conn)) {
        int left = ms_left(deadline);
        if (left == 0) {
            msg_warn("%s: PostgreSQL server %s did not answer within %ld s", p->spec, h->label,
                     p->query_timeout);
            *state = PG_TIMEOUT;
            return NULL;
        }
        struct pollfd pfd = { .fd = PQsocket(h->conn), .events = POLLIN };
        if (pfd.fd < 0) {
            *state = PG_BROKEN;
            return NULL;
        }
        int rc = poll(&pfd, 1, left);
        if (rc < 0 && errno != EINTR) {
            *state = PG_BROKEN;
            return NULL;
        }
        if (rc > 0 && !PQconsumeInput(h->conn)) {
            msg_warn("%s: PostgreSQL server %s: %s", p->spec, h->label, pg_error(h->conn));
            *state = PG_BROKEN;
            return NULL;
        }
    }
    return PQgetResult(h->conn);
}

/* The rows of one result: each non-NULL, non-empty field is a result
 * element, formatted with result_format. */
static int pg_collect(struct pgsql *p, PGresult *res, const char *key, struct map_results *r)
{
    struct strbuf err = STRBUF_INIT(256);
    int rows = PQntuples(res), cols = PQnfields(res), rc = 0;
    for (int i = 0; i < rows && rc == 0; i++)
        for (int j = 0; j < cols && rc == 0; j++)
            if (!PQgetisnull(res, i, j))
                rc = map_results_add(r, p->sql.result_format, PQgetvalue(res, i, j), key, &err);
    if (rc < 0)
        msg_warn("%s: lookup of \"%.100s\": %s", p->spec, key, sb_str(&err));
    sb_free(&err);
    return rc;
}

/* Ask one server: PG_OK with r filled, PG_QUERY_FAILED (the server said
 * no: a temporary error for this lookup), PG_BROKEN (the connection is
 * gone; it has been closed). */
static int pg_ask(struct pgsql *p, struct pg_host *h, const char *sql, const char *key,
                  struct map_results *r)
{
    if (!PQsendQuery(h->conn, sql)) {
        msg_warn("%s: PostgreSQL server %s: %s", p->spec, h->label, pg_error(h->conn));
        pg_disconnect(h);
        return PG_BROKEN;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += p->query_timeout;
    int state = PG_OK, rc = PG_OK;
    PGresult *res;
    while ((res = pg_next_result(p, h, &deadline, &state)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK) {
            if (rc == PG_OK && pg_collect(p, res, key, r) < 0)
                rc = PG_QUERY_FAILED;
        } else if (st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY) {
            if (PQstatus(h->conn) == CONNECTION_BAD) {
                state = PG_BROKEN;
            } else if (rc == PG_OK) {
                const char *msg = PQresultErrorMessage(res);
                msg_warn("%s: query for \"%.100s\" failed on %s: %.*s", p->spec, key, h->label,
                         (int)strcspn(msg, "\n"), msg);
                rc = PG_QUERY_FAILED;
            }
        }
        PQclear(res);
        if (state != PG_OK)
            break;
    }
    if (state == PG_OK && PQstatus(h->conn) == CONNECTION_BAD)
        state = PG_BROKEN;
    if (state == PG_TIMEOUT) {
        pg_disconnect(h);
        return PG_TIMEOUT;
    }
    if (state == PG_BROKEN) {
        if (h->reused)
            msg_info("%s: connection to PostgreSQL server %s lost: %s", p->spec, h->label,
                     pg_error(h->conn));
        pg_disconnect(h);
        return PG_BROKEN;
    }
    h->reused = true;
    return rc;
}

/* One server, connecting as needed: 1, 0, -1 (the lookup fails), or
 * PG_BROKEN (try the next server). A broken reused connection is reopened
 * once at once: the usual cause is a restart of the server. */
static int pg_lookup_host(struct pgsql *p, struct pg_host *h, const char *key,
                          struct strbuf *result)
{
    struct strbuf sql = STRBUF_INIT(PGSQL_QUERY_LIMIT);
    int rc = PG_BROKEN;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool was_open = h->conn != NULL;
        if (!h->conn && pg_connect(p, h) < 0)
            break;
        int q = pg_query_text(p, h->conn, key, &sql);
        if (q <= 0) {
            rc = q;
            break;
        }
        struct map_results r;
        sb_reset(result);
        map_results_init(&r, result, p->sql.expansion_limit);
        rc = pg_ask(p, h, sb_str(&sql), key, &r);
        if (rc == PG_OK) {
            rc = r.count > 0 ? 1 : 0;
            break;
        }
        if (rc == PG_QUERY_FAILED)
            break;
        /* no answer in time, or a fresh connection that broke: this
         * server is out for retry_interval */
        if (rc == PG_TIMEOUT || !was_open) {
            h->dead_until = time(NULL) + p->retry_interval;
            rc = PG_BROKEN;
            break;
        }
    }
    sb_free(&sql);
    if (rc != 1)
        sb_reset(result);
    return rc;
}

static int pgsql_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct pgsql *p = m->priv;
    if (!*key)
        return 0;
    int allow = map_query_domains_allow(p->sql.domains, key);
    if (allow <= 0)
        return allow;
    struct strbuf probe = STRBUF_INIT(PGSQL_QUERY_LIMIT);
    int q = pg_query_text(p, NULL, key, &probe);
    sb_free(&probe);
    if (q <= 0)
        return q;
    time_t now = time(NULL);
    for (size_t i = 0; i < p->nhosts; i++) {
        size_t k = (p->current + i) % p->nhosts;
        struct pg_host *h = &p->hosts[k];
        if (!h->conn && h->dead_until > now)
            continue;
        int rc = pg_lookup_host(p, h, key, result);
        if (rc != PG_BROKEN) {
            p->current = k;
            return rc;
        }
    }
    msg_warn("%s: lookup of \"%.100s\" failed: no PostgreSQL server of hosts answered "
             "(one that failed is tried again after retry_interval = %ld s)",
             p->spec, key, p->retry_interval);
    return -1;
}

static void pgsql_close(struct map *m)
{
    struct pgsql *p = m->priv;
    for (size_t i = 0; i < p->nhosts; i++) {
        struct pg_host *h = &p->hosts[i];
        pg_disconnect(h);
        FREE_ALL(h->label, h->uri, h->host, h->port);
    }
    free(p->hosts);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->user);
    free(p->dbname);
    map_sql_free(&p->sql);
    free(p);
}

/* One entry of hosts: a postgresql:// URI, unix:/socket/directory,
 * inet:host:port, host:port, [v6]:port or host. */
static int pg_add_host(struct pgsql *p, const char *word, struct strbuf *err)
{
    struct pg_host h = { .label = xstrdup(word) };
    if (strncmp(word, "postgresql://", 13) == 0 || strncmp(word, "postgres://", 11) == 0) {
        h.uri = xstrdup(word);
    } else if (strncmp(word, "unix:", 5) == 0) {
        if (word[5] != '/') {
            sb_appendf(err, "hosts: \"%.100s\": unix: needs the socket's directory", word);
            free(h.label);
            return -1;
        }
        h.host = xstrdup(word + 5);
    } else {
        const char *s = strncmp(word, "inet:", 5) == 0 ? word + 5 : word;
        const char *colon = NULL;
        if (*s == '[') {
            const char *close = strchr(s, ']');
            if (!close || (close[1] && close[1] != ':')) {
                sb_appendf(err, "hosts: \"%.100s\": expected [address]:port", word);
                free(h.label);
                return -1;
            }
            h.host = xstrndup(s + 1, (size_t)(close - s - 1));
            colon = close[1] ? close + 1 : NULL;
        } else {
            colon = strchr(s, ':');
            h.host = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
        }
        if (colon) {
            h.port = xstrdup(colon + 1);
            if (!*h.port || strspn(h.port, "0123456789") != strlen(h.port)) {
                sb_appendf(err, "hosts: \"%.100s\": bad port", word);
                free(h.label);
                free(h.host);
                free(h.port);
                return -1;
            }
        }
        if (!*h.host) {
            sb_appendf(err, "hosts: \"%.100s\": no host", word);
            free(h.label);
            free(h.host);
            free(h.port);
            return -1;
        }
    }
    p->hosts = xrealloc(p->hosts, (p->nhosts + 1) * sizeof(*p->hosts));
    p->hosts[p->nhosts++] = h;
    return 0;
}

/* query, or the query the older parameters describe. */
static char *pg_query_of(const struct map_query_file *f, struct strbuf *err)
{
    const char *q = map_query_str(f, "query", NULL);
    if (q && *q)
        return xstrdup(q);
    struct strbuf b = STRBUF_INIT(0);
    const char *fn = map_query_str(f, "select_function", NULL);
    const char *field = map_query_str(f, "select_field", NULL);
    const char *table = map_query_str(f, "table", NULL);
    const char *where = map_query_str(f, "where_field", NULL);
    if (fn && *fn) {
        sb_appendf(&b, "SELECT %s('%%s')", fn);
    } else if (field && table && where && *field && *table && *where) {
        const char *more = map_query_str(f, "additional_conditions", "");
        sb_appendf(&b, "SELECT %s FROM %s WHERE %s = '%%s' %s", field, table, where, more);
    } else {
        sb_appendf(err, "%s: no query (set query, or select_field, table and where_field)",
                   map_query_path(f));
        sb_free(&b);
        return NULL;
    }
    char *s = xstrdup(sb_str(&b));
    sb_free(&b);
    return s;
}

static int pg_configure(struct map *m, const struct map_query_file *f, struct strbuf *err)
{
    struct pgsql *p = m->priv;
    const char *path = map_query_path(f);
    p->spec = m->spec;
    if (map_query_int(f, "connect_timeout", 10, 2, 3600, &p->connect_timeout, err) < 0
        || map_query_int(f, "query_timeout", 10, 1, 3600, &p->query_timeout, err) < 0
        || map_query_int(f, "retry_interval", 60, 0, 86400, &p->retry_interval, err) < 0)
        return -1;
    char *query = pg_query_of(f, err);
    if (!query || map_sql_configure(&p->sql, f, query, 1000000, err) < 0)
        return -1;
    struct strbuf why = STRBUF_INIT(512);
    const char *v;
    if ((v = map_query_str(f, "user", NULL)))
        p->user = xstrdup(v);
    if ((v = map_query_str(f, "password", NULL)))
        p->password = xstrdup(v);
    if ((v = map_query_str(f, "dbname", NULL)))
        p->dbname = xstrdup(v);
    size_t n;
    char **words = cfg_list_split(map_query_str(f, "hosts", "localhost"), &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pg_add_host(p, words[i], &why);
    cfg_list_free(words, n);
    if (rc < 0) {
        sb_appendf(err, "%s: %s", path, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    if (p->nhosts == 0) {
        sb_appendf(err, "%s: hosts is empty", path);
        return -1;
    }
    if (!p->dbname && !p->hosts[0].uri) {
        sb_appendf(err, "%s: dbname is not set", path);
        return -1;
    }
    /* start at a different server in each process, so that many processes
     * spread over the servers of hosts, as Postfix's random order does */
    p->current = (size_t)getpid() % p->nhosts;
    return 0;
}

int map_pgsql_open(struct map *m, struct strbuf *err)
{
    static const struct map_query_type pgsql = {
        pgsql_params, sizeof(struct pgsql), pg_configure, pgsql_lookup, pgsql_close,
    };
    return map_query_open(m, &pgsql, err);
}
