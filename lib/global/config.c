/* config.c: reads main.cf (Postfix syntax: "name = value", continuation
 * lines begin with white space, '#' comments) and resolves every read through
 * the single parameter table in params.def, with $name / ${name} expansion.
 * Values stay valid until the next cfg_load (master reloads on SIGHUP). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mac_expand.h"
#include "strbuf.h"
#include "util.h"

/* The Makefile gives the install paths; a fuzz target built with one
 * compiler command (tests/run) has no use for them. */
#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR "/etc/tern"
#endif
#ifndef TERN_LIBEXECDIR
#define TERN_LIBEXECDIR "/usr/libexec/tern"
#endif
#ifndef TERN_BINDIR
#define TERN_BINDIR "/usr/bin"
#endif

#define CFG_LINE_LIMIT (1024 * 1024)   /* one logical line of main.cf */
#define CFG_VALUE_LIMIT (1024 * 1024)  /* one expanded value */
#define CFG_EXPAND_DEPTH 50

static const struct param_def param_defs[P__COUNT + 1] = {
#define PARAM(name, type, def, desc) { #name, type, def, desc },
#include "params.def"
#undef PARAM
    { NULL, PT_STR, NULL, NULL }
};

struct cfg_setting {
    char *name;
    char *value;    /* raw, unexpanded */
    char *file;     /* "main.cf" or "-o" */
    int line;
};

static struct {
    char *confdir;
    struct cfg_setting *set;   /* main.cf entries, then -o overrides; later wins */
    size_t nset, capset;
    char *expanded[P__COUNT];  /* cache of expanded table parameters */
    char **extra_cache;        /* expanded values handed out for non-table names */
    size_t nextra;
    char *default_hostname;
    char *default_domain;
} cfg;

const struct param_def *param_table(void)
{
    return param_defs;
}

const struct param_def *param_find(const char *name)
{
    for (int i = 0; i < P__COUNT; i++)
        if (strcmp(param_defs[i].name, name) == 0)
            return &param_defs[i];
    return NULL;
}

const char *cfg_confdir(void)
{
    return cfg.confdir ? cfg.confdir : TERN_SYSCONFDIR;
}

static void cfg_clear(void)
{
    for (size_t i = 0; i < cfg.nset; i++) {
        free(cfg.set[i].name);
        free(cfg.set[i].value);
        free(cfg.set[i].file);
    }
    free(cfg.set);
    cfg.set = NULL;
    cfg.nset = cfg.capset = 0;
    for (int i = 0; i < P__COUNT; i++) {
        free(cfg.expanded[i]);
        cfg.expanded[i] = NULL;
    }
    for (size_t i = 0; i < cfg.nextra; i++)
        free(cfg.extra_cache[i]);
    free(cfg.extra_cache);
    cfg.extra_cache = NULL;
    cfg.nextra = 0;
}

static void cfg_add(const char *name, const char *value, const char *file, int line)
{
    if (cfg.nset == cfg.capset) {
        cfg.capset = cfg.capset ? cfg.capset * 2 : 64;
        cfg.set = xrealloc(cfg.set, cfg.capset * sizeof(*cfg.set));
    }
    struct cfg_setting *s = &cfg.set[cfg.nset++];
    s->name = xstrdup(name);
    s->value = xstrdup(value);
    s->file = xstrdup(file);
    s->line = line;
}

static bool cfg_valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 100)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* Handle one complete logical line "name = value". */
static int cfg_parse_logical(char *text, const char *path, int line, struct strbuf *err)
{
    char *eq = strchr(text, '=');
    if (!eq) {
        sb_appendf(err, "%s:%d: missing '=' after parameter name \"%.60s\"", path, line, text);
        return -1;
    }
    *eq = 0;
    char *name = str_trim(text);
    char *value = str_trim(eq + 1);
    if (!cfg_valid_name(name, strlen(name))) {
        sb_appendf(err, "%s:%d: bad parameter name \"%.60s\"", path, line, name);
        return -1;
    }
    cfg_add(name, value, "main.cf", line);
    return 0;
}

static int cfg_read_file(FILE *fp, const char *path, struct strbuf *err)
{
    struct strbuf logical = STRBUF_INIT(CFG_LINE_LIMIT);
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    int lineno = 0, start_line = 0, rc = 0;

    while (rc == 0 && (n = getline(&line, &linecap, fp)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (memchr(line, 0, (size_t)n)) {
            sb_appendf(err, "%s:%d: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == 0 || *p == '#')
            continue;                      /* comments never end a logical line */
        if (p != line) {                   /* continuation */
            if (logical.len == 0) {
                sb_appendf(err, "%s:%d: continuation line without a parameter before it", path, lineno);
                rc = -1;
            } else if (sb_appendc(&logical, ' ') < 0 || sb_appends(&logical, p) < 0) {
                sb_appendf(err, "%s:%d: logical line too long", path, lineno);
                rc = -1;
            }
            continue;
        }
        if (logical.len)
            rc = cfg_parse_logical(logical.data, path, start_line, err);
        sb_reset(&logical);
        if (rc == 0 && sb_appends(&logical, p) < 0) {
            sb_appendf(err, "%s:%d: line too long", path, lineno);
            rc = -1;
        }
        start_line = lineno;
    }
    if (rc == 0 && logical.len)
        rc = cfg_parse_logical(logical.data, path, start_line, err);
    if (rc == 0 && ferror(fp)) {
        sb_appendf(err, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    sb_free(&logical);
    return rc;
}

const char *cfg_env_confdir(void)
{
    static const char *const names[] = { "TERN_CONFIG_DIRECTORY", "MAIL_CONFIG" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return v;
    }
    return NULL;
}

int cfg_load(const char *confdir, struct strbuf *err)
{
    cfg_clear();
    if (!confdir || !*confdir)
        confdir = cfg_env_confdir();
    /* confdir may be the old cfg.confdir itself: copy before freeing. */
    char *dir = xstrdup(confdir && *confdir ? confdir : TERN_SYSCONFDIR);
    free(cfg.confdir);
    cfg.confdir = dir;

    struct strbuf path = STRBUF_INIT(PATH_MAX);
    if (sb_appendf(&path, "%s/main.cf", cfg.confdir) < 0) {
        sb_appends(err, "configuration directory name too long");
        return -1;
    }
    FILE *fp = fopen(path.data, "re");
    if (!fp) {
        sb_appendf(err, "cannot open %s: %s", path.data, strerror(errno));
        sb_free(&path);
        return -1;
    }
    int rc = cfg_read_file(fp, path.data, err);
    fclose(fp);
    sb_free(&path);
    return rc;
}

void cfg_override(const char *name, const char *value)
{
    cfg_add(name, value, "-o", 0);
    /* Overrides can change anything that refers to them: drop the cache. */
    for (int i = 0; i < P__COUNT; i++) {
        free(cfg.expanded[i]);
        cfg.expanded[i] = NULL;
    }
}

/* Latest setting of name, or NULL. */
static const struct cfg_setting *cfg_setting_find(const char *name, size_t len)
{
    for (size_t i = cfg.nset; i-- > 0;)
        if (strlen(cfg.set[i].name) == len && memcmp(cfg.set[i].name, name, len) == 0)
            return &cfg.set[i];
    return NULL;
}

const char *cfg_get_raw_set(const char *name)
{
    const struct cfg_setting *s = cfg_setting_find(name, strlen(name));
    return s ? s->value : NULL;
}

/* The host name and domain defaults are computed, not written in the table. */
static const char *cfg_computed_default(const char *name)
{
    if (strcmp(name, "myhostname") == 0) {
        if (!cfg.default_hostname) {
            char host[256] = "localhost";
            if (gethostname(host, sizeof(host) - 1) == 0)
                host[sizeof(host) - 1] = 0;
            cfg.default_hostname = xstrdup(host);
        }
        return cfg.default_hostname;
    }
    return NULL;
}

static const char *cfg_raw(const char *name, size_t len)
{
    const struct cfg_setting *s = cfg_setting_find(name, len);
    if (s)
        return s->value;
    for (int i = 0; i < P__COUNT; i++) {
        if (strlen(param_defs[i].name) == len && memcmp(param_defs[i].name, name, len) == 0) {
            const char *def = param_defs[i].default_value;
            if (*def == 0) {
                char tmp[128];
                if (len < sizeof(tmp)) {
                    memcpy(tmp, name, len);
                    tmp[len] = 0;
                    const char *computed = cfg_computed_default(tmp);
                    if (computed)
                        return computed;
                }
            }
            return def;
        }
    }
    return NULL;
}

/* What a main.cf expansion carries besides the template: where the
 * computed mydomain lives, and whether computing it found a loop. */
struct cfg_expand_ctx {
    struct strbuf mydomain;
    int computing;             /* mydomain is being computed from myhostname */
    bool failed;
};

static int cfg_expand_template(struct strbuf *out, const char *tmpl, struct cfg_expand_ctx *ctx);

/* mydomain's default depends on the expanded myhostname. The result is read
 * again as a template, so a literal '$' in it is written "$$". */
static const char *cfg_mydomain_default(struct cfg_expand_ctx *ctx)
{
    if (ctx->computing) {
        ctx->failed = true;    /* myhostname refers back to mydomain */
        return "";
    }
    struct strbuf host = STRBUF_INIT(CFG_VALUE_LIMIT);
    ctx->computing++;
    if (cfg_expand_template(&host, "$myhostname", ctx) < 0)
        ctx->failed = true;
    ctx->computing--;
    const char *dot = strchr(sb_str(&host), '.');
    const char *domain = dot && dot[1] ? dot + 1 : "localdomain";
    sb_reset(&ctx->mydomain);
    for (; *domain; domain++)
        if ((*domain == '$' && sb_appendc(&ctx->mydomain, '$') < 0)
            || sb_appendc(&ctx->mydomain, *domain) < 0)
            ctx->failed = true;
    sb_free(&host);
    return sb_str(&ctx->mydomain);
}

/* Undefined names expand to nothing, as in Postfix. */
static const char *cfg_expand_lookup(const char *name, size_t len, void *context)
{
    const char *raw = cfg_raw(name, len);
    if (raw && *raw == 0 && len == 8 && memcmp(name, "mydomain", 8) == 0)
        return cfg_mydomain_default(context);
    return raw;
}

/* 0, or -1 on a loop, bad syntax (unbalanced ${...}, a $ without a name) or
 * a value over CFG_VALUE_LIMIT. */
static int cfg_expand_template(struct strbuf *out, const char *tmpl, struct cfg_expand_ctx *ctx)
{
    const struct mac_expand_spec spec = {
        .lookup = cfg_expand_lookup, .context = ctx, .flags = MAC_EXP_RECURSE,
        .depth_max = CFG_EXPAND_DEPTH,
    };
    return (mac_expand(out, tmpl, &spec) & MAC_EXP_ERROR) || ctx->failed ? -1 : 0;
}

static int cfg_expand_into(struct strbuf *out, const char *raw)
{
    struct cfg_expand_ctx ctx = { .mydomain = STRBUF_INIT(CFG_VALUE_LIMIT) };
    int rc = cfg_expand_template(out, raw, &ctx);
    sb_free(&ctx.mydomain);
    return rc;
}

/* Expand a raw value; fatal on loops, unbalanced braces or oversize. */
static char *cfg_expand(const char *name, const char *raw)
{
    struct strbuf out = STRBUF_INIT(CFG_VALUE_LIMIT);
    if (cfg_expand_into(&out, raw) < 0)
        msg_fatal("parameter %s: cannot expand \"%.100s\" (recursion loop, unbalanced ${...} "
                  "or value too long); fix %s/main.cf", name, raw, cfg_confdir());
    char *v = xstrdup(sb_str(&out));
    sb_free(&out);
    return v;
}

const char *cfg_str(enum param_id id)
{
    if (id < 0 || id >= P__COUNT)
        msg_panic("cfg_str: bad parameter id %d", (int)id);
    if (!cfg.expanded[id]) {
        const char *name = param_defs[id].name;
        struct strbuf out = STRBUF_INIT(CFG_VALUE_LIMIT), ref = STRBUF_INIT(0);
        sb_appendf(&ref, "${%s}", name);
        int rc = cfg_expand_into(&out, sb_str(&ref));
        sb_free(&ref);
        if (rc < 0)
            msg_fatal("parameter %s: cannot expand \"%.100s\" (recursion loop, unbalanced "
                      "${...} or value too long); fix %s/main.cf",
                      name, cfg_raw(name, strlen(name)), cfg_confdir());
        cfg.expanded[id] = xstrdup(sb_str(&out));
        sb_free(&out);
    }
    return cfg.expanded[id];
}

const char *cfg_get(const char *name)
{
    const struct param_def *d = param_find(name);
    if (d)
        return cfg_str((enum param_id)(d - param_defs));
    const char *raw = cfg_raw(name, strlen(name));
    if (!raw)
        return NULL;
    cfg.extra_cache = xrealloc(cfg.extra_cache, (cfg.nextra + 1) * sizeof(char *));
    cfg.extra_cache[cfg.nextra] = cfg_expand(name, raw);
    return cfg.extra_cache[cfg.nextra++];
}

long parse_time_value(const char *s, char default_unit)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || v < 0)
        return -1;
    char unit = *end ? *end++ : default_unit;
    if (*end)
        return -1;
    long mult;
    switch (tolower((unsigned char)unit)) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 604800; break;
    default: return -1;
    }
    if (v > LONG_MAX / mult)
        return -1;
    return v * mult;
}

long long parse_size_value(const char *s)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return -1;
    long long mult = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mult = 1024; break;
        case 'm': mult = 1024 * 1024; break;
        case 'g': mult = 1024LL * 1024 * 1024; break;
        default: return -1;
        }
        if (end[1])
            return -1;
    }
    if (v > LLONG_MAX / mult)
        return -1;
    return v * mult;
}

static int parse_bool_value(const char *s)
{
    if (str_ieq(s, "yes") || str_ieq(s, "true") || strcmp(s, "1") == 0)
        return 1;
    if (str_ieq(s, "no") || str_ieq(s, "false") || strcmp(s, "0") == 0)
        return 0;
    return -1;
}

static char default_time_unit(enum param_id id)
{
    const char *def = param_defs[id].default_value;
    size_t n = strlen(def);
    return n && isalpha((unsigned char)def[n - 1]) ? def[n - 1] : 's';
}

static void cfg_type_fatal(enum param_id id, const char *what)
{
    msg_fatal("parameter %s: bad %s value \"%.100s\" in %s/main.cf",
              param_defs[id].name, what, cfg_str(id), cfg_confdir());
}

long cfg_int(enum param_id id)
{
    long v;
    if (parse_long(cfg_str(id), LONG_MIN, LONG_MAX, &v) < 0)
        cfg_type_fatal(id, "numerical");
    return v;
}

bool cfg_bool(enum param_id id)
{
    int v = parse_bool_value(cfg_str(id));
    if (v < 0)
        cfg_type_fatal(id, "boolean (yes or no)");
    return v;
}

long cfg_time(enum param_id id)
{
    long v = parse_time_value(cfg_str(id), default_time_unit(id));
    if (v < 0)
        cfg_type_fatal(id, "time");
    return v;
}

/* The highest code a reply-code parameter may have: a code meant to defer
 * must never become a refusal. */
static long highest_reply_code(enum param_id id)
{
    return param_defs[id].type == PT_DEFER_CODE ? 499 : 599;
}

int cfg_reply_code(enum param_id id)
{
    long v;
    if (parse_long(cfg_str(id), 400, highest_reply_code(id), &v) < 0)
        cfg_type_fatal(id, highest_reply_code(id) == 499 ? "reply code (400 to 499)"
                                                         : "reply code (400 to 599)");
    return (int)v;
}

long long cfg_size(enum param_id id)
{
    long long v = parse_size_value(cfg_str(id));
    if (v < 0)
        cfg_type_fatal(id, "size");
    return v;
}

/* Check that a value parses for its type without expanding fatally. */
static const char *cfg_type_problem(enum param_id id, const char *value)
{
    long l;
    switch (param_defs[id].type) {
    case PT_INT:
        return parse_long(value, LONG_MIN, LONG_MAX, &l) < 0 ? "numerical" : NULL;
    case PT_BOOL:
        return parse_bool_value(value) < 0 ? "boolean (yes or no)" : NULL;
    case PT_TIME:
        return parse_time_value(value, default_time_unit(id)) < 0 ? "time" : NULL;
    case PT_SIZE:
        return parse_size_value(value) < 0 ? "size" : NULL;
    case PT_REPLY_CODE:
        return parse_long(value, 400, 599, &l) < 0 ? "reply code (400 to 599)" : NULL;
    case PT_DEFER_CODE:
        return parse_long(value, 400, 499, &l) < 0 ? "reply code (400 to 499)" : NULL;
    default:
        return NULL;
    }
}

int cfg_validate(struct strbuf *err)
{
    int problems = 0;
    for (int i = 0; i < P__COUNT; i++) {
        const char *name = param_defs[i].name;
        struct strbuf out = STRBUF_INIT(CFG_VALUE_LIMIT);
        const char *raw = cfg_raw(name, strlen(name));
        if (cfg_expand_into(&out, raw) < 0) {
            sb_appendf(err, "parameter %s: cannot expand \"%.100s\"\n", name, raw);
            problems++;
        } else {
            const char *what = cfg_type_problem((enum param_id)i, sb_str(&out));
            if (what) {
                const struct cfg_setting *s = cfg_setting_find(name, strlen(name));
                if (s && s->line > 0)
                    sb_appendf(err, "%s:%d: ", s->file, s->line);
                else    /* a master.cf -o value (or a default) has no line */
                    sb_appendf(err, "%s: ", s ? "master.cf -o" : "default");
                sb_appendf(err, "parameter %s: bad %s value \"%.100s\"\n", name, what, sb_str(&out));
                problems++;
            }
        }
        sb_free(&out);
    }
    return problems;
}

/* Is $name (or ${name...}) used in any value we know? */
static bool cfg_name_referenced(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i <= cfg.nset + P__COUNT; i++) {
        const char *v = i < cfg.nset ? cfg.set[i].value
                      : (i - cfg.nset < P__COUNT ? param_defs[i - cfg.nset].default_value : NULL);
        for (const char *p = v ? strchr(v, '$') : NULL; p; p = strchr(p + 1, '$')) {
            const char *q = p + 1;
            if (*q == '{' || *q == '(')
                q++;
            if (strncmp(q, name, len) == 0 && !isalnum((unsigned char)q[len]) && q[len] != '_')
                return true;
        }
    }
    return false;
}

/* Is name listed in smtpd_restriction_classes (a user-defined restriction
 * list, as in Postfix)? */
static bool cfg_is_restriction_class(const char *name)
{
    return cfg_list_has(cfg_str(P_smtpd_restriction_classes), name);
}

void cfg_unknown(void (*fn)(const char *name, const char *file, int line, void *ctx), void *ctx)
{
    for (size_t i = 0; i < cfg.nset; i++) {
        const char *name = cfg.set[i].name;
        if (param_find(name) || cfg_name_referenced(name) || cfg_is_restriction_class(name))
            continue;
        bool later = false;   /* report each name once, at its last setting */
        for (size_t j = i + 1; j < cfg.nset; j++)
            if (strcmp(cfg.set[j].name, name) == 0)
                later = true;
        if (!later)
            fn(name, cfg.set[i].file, cfg.set[i].line, ctx);
    }
}

/* Each suffix with the table parameter that applies when it is not set. */
static const struct {
    const char *suffix;
    const char *fallback;
} per_transport[] = {
    { "_destination_concurrency_limit", "default_destination_concurrency_limit" },
    { "_destination_recipient_limit", "default_destination_recipient_limit" },
    { "_initial_destination_concurrency", "initial_destination_concurrency" },
    { "_destination_concurrency_failed_cohort_limit", "destination_concurrency_failed_cohort_limit" },
    /* a time, not a number: read by the pipe agent of that service */
    { "_time_limit", "command_time_limit" },
};

const char *cfg_per_transport_default(const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof(per_transport) / sizeof(*per_transport); i++) {
        size_t n = strlen(per_transport[i].suffix);
        if (len > n && strcmp(name + len - n, per_transport[i].suffix) == 0)
            return per_transport[i].fallback;
    }
    return NULL;
}

bool cfg_is_per_transport(const char *name)
{
    return cfg_per_transport_default(name) != NULL;
}

int cfg_per_transport_check(const char *name, const char *value)
{
    const char *fallback = cfg_per_transport_default(name);
    long n;
    if (fallback && strcmp(fallback, "command_time_limit") == 0)
        return parse_time_value(value, 's') < 0 ? -1 : 0;
    return parse_long(value, 0, 1000000, &n) < 0 ? -1 : 0;
}

int cfg_check_param(const char *name, struct strbuf *err)
{
    const struct param_def *d = param_find(name);
    bool per_transport_value = !d && cfg_is_per_transport(name);
    const char *raw = cfg_raw(name, strlen(name));
    if ((!d && !per_transport_value) || !raw)
        return 0;
    struct strbuf out = STRBUF_INIT(CFG_VALUE_LIMIT);
    int rc = 0;
    long n;
    if (cfg_expand_into(&out, raw) < 0) {
        sb_appendf(err, "parameter %s: cannot expand \"%.100s\" (recursion loop, unbalanced "
                   "${...} or value too long)", name, raw);
        rc = -1;
    } else if (d) {
        const char *what = cfg_type_problem((enum param_id)(d - param_defs), sb_str(&out));
        if (what) {
            sb_appendf(err, "parameter %s: bad %s value \"%.100s\"", name, what, sb_str(&out));
            rc = -1;
        }
    } else if (cfg_per_transport_check(name, sb_str(&out)) < 0) {
        /* the range qmgr accepts for the numbers */
        if (parse_long(sb_str(&out), 0, 1000000, &n) == 0)
            sb_appendf(err, "parameter %s: bad time value \"%.100s\"", name, sb_str(&out));
        else
            sb_appendf(err, "parameter %s: bad numerical value \"%.100s\" (expected 0..1000000)",
                       name, sb_str(&out));
        rc = -1;
    }
    sb_free(&out);
    return rc;
}

void cfg_each_set(void (*fn)(const char *name, const char *raw_value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < cfg.nset; i++) {
        bool later = false;
        for (size_t j = i + 1; j < cfg.nset; j++)
            if (strcmp(cfg.set[j].name, cfg.set[i].name) == 0)
                later = true;
        if (!later)
            fn(cfg.set[i].name, cfg.set[i].value, ctx);
    }
}

char **cfg_list_split(const char *value, size_t *count)
{
    size_t n = 0, cap = 8;
    char **list = xmalloc(cap * sizeof(char *));
    const char *p = value ? value : "";
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p)
            break;
        size_t len = 0;
        int braces = 0;   /* keep "{ ... }" groups (inline: maps) in one word */
        while (p[len] && (braces > 0 || !(isspace((unsigned char)p[len]) || p[len] == ','))) {
            if (p[len] == '{')
                braces++;
            else if (p[len] == '}' && braces > 0)
                braces--;
            len++;
        }
        if (n + 1 >= cap) {
            cap *= 2;
            list = xrealloc(list, cap * sizeof(char *));
        }
        list[n++] = xstrndup(p, len);
        p += len;
    }
    list[n] = NULL;
    *count = n;
    return list;
}

void cfg_list_free(char **list, size_t count)
{
    str_array_free(list, count);
}

bool cfg_list_has(const char *value, const char *word)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(words[i], word) == 0;
    cfg_list_free(words, n);
    return found;
}

unsigned cfg_list_bits(const char *value, const struct name_code *names, const char *what)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        str_lower(words[i]);
        int code = name_code(names, words[i]);
        if (code == 0)
            msg_warn("%s: unknown word \"%s\" ignored", what, words[i]);
        bits |= (unsigned)code;
    }
    cfg_list_free(words, n);
    return bits;
}

void cfg_log_configure(void)
{
    log_file_settings(cfg_str(P_maillog_file_permissions), cfg_str(P_mail_owner),
                      cfg_str(P_maillog_file_group));
    log_configure(cfg_str(P_syslog_name), cfg_str(P_syslog_facility), cfg_str(P_maillog_file));
}
