/* tern_conf.c: `tern conf`, Tern's postconf: prints main.cf parameters (the
 * effective values, the settings main.cf makes, or the defaults with their
 * descriptions), edits main.cf in place (-e, -X) without losing a comment,
 * and prints the services of master.cf (-M). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mastercf.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

#define MAINCF_SIZE_LIMIT (64 * 1024 * 1024)   /* a main.cf this large is not one */
#define MASTERCF_SIZE_LIMIT (16 * 1024 * 1024)
#define NAME_LENGTH_LIMIT 100                  /* as the main.cf reader allows */

enum conf_mode { MODE_EFFECTIVE, MODE_SET, MODE_DEFAULTS, MODE_EDIT, MODE_REMOVE, MODE_SERVICES };

struct conf_options {
    enum conf_mode mode;
    bool values_only;     /* -h */
};

static void conf_usage(FILE *fp)
{
    fprintf(fp,
        "usage: tern [-c CONFDIR] conf [-c CONFDIR] [-n | -d] [-h] [NAME...]\n"
        "       tern [-c CONFDIR] conf -e NAME=VALUE...\n"
        "       tern [-c CONFDIR] conf -X NAME...\n"
        "       tern [-c CONFDIR] conf -M [SERVICE[/TYPE]...]\n"
        "\n"
        "Print main.cf parameters, as Postfix's postconf does:\n"
        "  (no option)  every parameter with its effective value, $name references\n"
        "               expanded as the daemons expand them: \"name = value\", sorted by\n"
        "               name (parameters of your own and per-transport settings that\n"
        "               main.cf makes are included)\n"
        "  -n           only the settings main.cf makes, with the values as written\n"
        "  -d           the built-in defaults, each after a \"# description\" line:\n"
        "                   # Time smtpd waits for a client command ...\n"
        "                   smtpd_timeout = 300s\n"
        "  -h           values only: no \"name = \" and no descriptions\n"
        "  -x           accepted for compatibility: values are expanded already\n"
        "  NAME...      just these, in the order given; an unknown name is reported on\n"
        "               stderr (\"NAME: unknown parameter\"), the others are still shown,\n"
        "               and the exit status is 1\n"
        "\n"
        "Edit main.cf in place: comments, blank lines and the order of the settings\n"
        "are kept, and the file is replaced atomically (written to a temporary file in\n"
        "its directory, synced, renamed). The change takes effect at `tern reload`.\n"
        "  -e NAME=VALUE...  set parameters (\"NAME = VALUE\" as one argument works too):\n"
        "               a setting main.cf has is replaced, continuation lines included;\n"
        "               a new one is appended at the end. Each value is checked with the\n"
        "               parsers the daemons use, and so is every parameter that refers to\n"
        "               it; on any error main.cf is left as it was. NAME must be a Tern\n"
        "               parameter (`tern conf -d`), a per-transport setting such as\n"
        "               smtp_destination_concurrency_limit, or a parameter of your own\n"
        "               that another setting refers to as $NAME (set both in one command)\n"
        "  -X NAME...   remove settings from main.cf, so that the defaults apply again\n"
        "\n"
        "Print master.cf:\n"
        "  -M [SERVICE[/TYPE]...]  the services (all, or those named), one per line with\n"
        "               the columns normalized: service type private unpriv chroot wakeup\n"
        "               maxproc command args\n"
        "\n"
        "  -c CONFDIR   the configuration directory (as `tern -c CONFDIR`)\n"
        "Exit status: 0 done, 1 an error (reported on stderr), 2 bad usage.\n");
}

static void print_setting(const char *name, const char *value, bool values_only)
{
    if (values_only)
        printf("%s\n", value);
    else if (*value)
        printf("%s = %s\n", name, value);
    else
        printf("%s =\n", name);
}

static bool name_is_well_formed(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > NAME_LENGTH_LIMIT)
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return false;
    return true;
}

/* ---- a list of names ---- */

struct names {
    char **v;
    size_t n, cap;
};

static void names_add(struct names *l, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = xstrdup(name);
}

static bool names_contain(const struct names *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return true;
    return false;
}

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct names){ 0 };
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void collect_unknown(const char *name, const char *file, int line, void *ctx)
{
    names_add(ctx, name);
}

static void collect_set(const char *name, const char *raw, void *ctx)
{
    names_add(ctx, name);
}

/* ---- printing parameters ---- */

/* The value a reader of name sees: a per-transport setting that main.cf
 * does not make has the value of its table parameter. NULL when unknown. */
static const char *effective_value(const char *name)
{
    const char *value = cfg_get(name);
    if (!value && cfg_is_per_transport(name))
        value = cfg_get(cfg_per_transport_default(name));
    return value;
}

/* Unknown settings are left out of the listing, as `tern check` warns of them. */
static void warn_unknown(const char *name, const char *file, int line, void *ctx)
{
    if (!cfg_is_per_transport(name))
        fprintf(stderr, "tern: warning: %s/main.cf:%d: unknown parameter %s (misspelled, or "
                "not supported by Tern); it is not shown\n", cfg_confdir(), line, name);
}

static void show_all_effective(bool values_only)
{
    struct names all = { 0 }, set = { 0 }, unknown = { 0 };
    for (const struct param_def *d = param_table(); d->name; d++)
        names_add(&all, d->name);
    cfg_each_set(collect_set, &set);
    cfg_unknown(collect_unknown, &unknown);
    for (size_t i = 0; i < set.n; i++)
        if (!param_find(set.v[i])
            && (cfg_is_per_transport(set.v[i]) || !names_contain(&unknown, set.v[i])))
            names_add(&all, set.v[i]);
    qsort(all.v, all.n, sizeof(*all.v), compare_names);
    for (size_t i = 0; i < all.n; i++)
        print_setting(all.v[i], effective_value(all.v[i]), values_only);
    cfg_unknown(warn_unknown, NULL);
    names_free(&all);
    names_free(&set);
    names_free(&unknown);
}

static void show_all_set(bool values_only)
{
    struct names set = { 0 };
    cfg_each_set(collect_set, &set);
    qsort(set.v, set.n, sizeof(*set.v), compare_names);
    for (size_t i = 0; i < set.n; i++)
        print_setting(set.v[i], cfg_get_raw_set(set.v[i]), values_only);
    names_free(&set);
}

static void print_default(const char *name, const char *description, const char *value,
                          bool values_only)
{
    if (!values_only)
        printf("# %s\n", description);
    print_setting(name, value, values_only);
}

static void show_all_defaults(bool values_only)
{
    struct names all = { 0 };
    for (const struct param_def *d = param_table(); d->name; d++)
        names_add(&all, d->name);
    qsort(all.v, all.n, sizeof(*all.v), compare_names);
    for (size_t i = 0; i < all.n; i++) {
        const struct param_def *d = param_find(all.v[i]);
        print_default(d->name, d->description, d->default_value, values_only);
    }
    names_free(&all);
}

/* The default of a per-transport setting is its table parameter's value. */
static void print_per_transport_default(const char *name, bool values_only)
{
    const char *fallback = cfg_per_transport_default(name);
    struct strbuf value = STRBUF_INIT(0), description = STRBUF_INIT(0);
    sb_appendf(&value, "$%s", fallback);
    sb_appendf(&description, "Per-transport setting, read for the master.cf service "
               "its name begins with; while it is not set, %s applies", fallback);
    print_default(name, sb_str(&description), sb_str(&value), values_only);
    sb_free(&value);
    sb_free(&description);
}

/* One NAME operand; 0 shown (or known but not set, with -n), -1 unknown. */
static int show_one(const char *name, const struct conf_options *o)
{
    const struct param_def *d = param_find(name);
    bool per_transport = !d && cfg_is_per_transport(name);
    const char *raw = cfg_get_raw_set(name);
    switch (o->mode) {
    case MODE_DEFAULTS:
        if (d) {
            print_default(d->name, d->description, d->default_value, o->values_only);
            return 0;
        }
        if (per_transport) {
            print_per_transport_default(name, o->values_only);
            return 0;
        }
        break;
    case MODE_SET:
        if (raw)
            print_setting(name, raw, o->values_only);
        if (raw || d || per_transport)
            return 0;
        break;
    default:
        if (d || per_transport || raw) {
            print_setting(name, effective_value(name), o->values_only);
            return 0;
        }
        break;
    }
    fprintf(stderr, "tern: warning: %s: unknown parameter\n", name);
    return -1;
}

static int show_parameters(int argc, char **argv, const struct conf_options *o)
{
    tern_load_config();
    if (argc == 0) {
        if (o->mode == MODE_SET)
            show_all_set(o->values_only);
        else if (o->mode == MODE_DEFAULTS)
            show_all_defaults(o->values_only);
        else
            show_all_effective(o->values_only);
        return 0;
    }
    int rc = 0;
    for (int i = 0; i < argc; i++)
        if (show_one(argv[i], o) < 0)
            rc = 1;
    return rc;
}

/* ---- editing main.cf ---- */

struct edit {
    char *name;
    char *value;       /* NULL: remove the setting */
    int found;         /* settings of name met in main.cf */
};

static void trim_span(const char **start, const char **end)
{
    while (*start < *end && isspace((unsigned char)**start))
        (*start)++;
    while (*end > *start && isspace((unsigned char)(*end)[-1]))
        (*end)--;
}

/* "NAME=VALUE" or "NAME = VALUE" (for -e), or "NAME" (for -X). */
static int parse_edit(const char *arg, bool removing, struct edit *e)
{
    const char *eq = strchr(arg, '=');
    if (!removing && !eq) {
        fprintf(stderr, "tern: \"%s\": expected NAME=VALUE\n", arg);
        return -1;
    }
    const char *start = arg, *end = removing ? arg + strlen(arg) : eq;
    trim_span(&start, &end);
    e->name = xstrndup(start, (size_t)(end - start));
    e->value = NULL;
    e->found = 0;
    if (!name_is_well_formed(e->name)) {
        fprintf(stderr, "tern: \"%s\": a parameter name is 1 to %d letters, digits, \"_\", "
                "\"-\" or \".\"%s\n", arg, NAME_LENGTH_LIMIT,
                removing ? "" : ", followed by =VALUE");
        free(e->name);
        return -1;
    }
    if (removing)
        return 0;
    start = eq + 1;
    end = start + strlen(start);
    trim_span(&start, &end);
    if (memchr(start, '\n', (size_t)(end - start)) || memchr(start, '\r', (size_t)(end - start))) {
        fprintf(stderr, "tern: %s: the value must be one line\n", e->name);
        free(e->name);
        return -1;
    }
    e->value = xstrndup(start, (size_t)(end - start));
    return 0;
}

static void edits_free(struct edit *edits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(edits[i].name);
        free(edits[i].value);
    }
    free(edits);
}

static struct edit *find_edit(struct edit *edits, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(edits[i].name) == len && memcmp(edits[i].name, name, len) == 0)
            return &edits[i];
    return NULL;
}

struct unknown_check {
    struct edit *edits;
    size_t n;
    int errors;
};

static void refuse_unknown(const char *name, const char *file, int line, void *ctx)
{
    struct unknown_check *uc = ctx;
    struct edit *e = find_edit(uc->edits, uc->n, name, strlen(name));
    if (!e || !e->value || cfg_is_per_transport(name))
        return;
    fprintf(stderr, "tern: %s: unknown parameter (misspelled, or not supported by Tern; "
            "`tern conf -d` lists the parameters). A parameter of your own must be referred "
            "to as $%s by another setting: set both in one command\n", name, name);
    uc->errors++;
}

/* Apply the edits to the loaded configuration and check the result as the
 * daemons will read it: each new value, every parameter that was valid
 * before (it may refer to an edited one), and the names. 0 ok, -1 refused. */
static int check_edits(struct edit *edits, size_t n)
{
    bool *bad_before = xcalloc(P__COUNT, sizeof(bool));
    const struct param_def *table = param_table();
    struct strbuf err = STRBUF_INIT(65536);
    for (int i = 0; i < P__COUNT; i++) {
        bad_before[i] = cfg_check_param(table[i].name, &err) < 0;
        sb_reset(&err);
    }
    for (size_t i = 0; i < n; i++) {
        const struct param_def *d = param_find(edits[i].name);
        if (edits[i].value)
            cfg_override(edits[i].name, edits[i].value);
        else if (!d)
            cfg_override(edits[i].name, "");      /* an unset name expands to nothing */
        else if (*d->default_value)               /* empty defaults are computed: always valid */
            cfg_override(edits[i].name, d->default_value);
    }
    int errors = 0;
    for (size_t i = 0; i < n; i++) {
        if (edits[i].value && cfg_check_param(edits[i].name, &err) < 0) {
            fprintf(stderr, "tern: %s\n", sb_str(&err));
            errors++;
        }
        sb_reset(&err);
    }
    for (int i = 0; i < P__COUNT; i++) {
        if (bad_before[i] || find_edit(edits, n, table[i].name, strlen(table[i].name)))
            continue;
        if (cfg_check_param(table[i].name, &err) < 0) {
            fprintf(stderr, "tern: the change would break another setting: %s\n", sb_str(&err));
            errors++;
        }
        sb_reset(&err);
    }
    struct unknown_check uc = { edits, n, 0 };
    cfg_unknown(refuse_unknown, &uc);
    errors += uc.errors;
    sb_free(&err);
    free(bad_before);
    return errors ? -1 : 0;
}

/* The whole file into buf; -1 with a message on stderr. */
static int read_whole_file(const char *path, size_t limit, struct strbuf *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tern: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    ssize_t got;
    int rc = 0;
    while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf(stderr, "tern: cannot read %s: %s\n", path, strerror(errno));
            rc = -1;
            break;
        }
        if (sb_append(buf, chunk, (size_t)got) < 0) {
            fprintf(stderr, "tern: %s is larger than %zu bytes\n", path, limit);
            rc = -1;
            break;
        }
    }
    close(fd);
    return rc;
}

static int append_setting(struct strbuf *out, const char *name, const char *value)
{
    return *value ? sb_appendf(out, "%s = %s\n", name, value) : sb_appendf(out, "%s =\n", name);
}

/* Copy main.cf from in to out with the edits made. As the reader does, a
 * line that begins with white space continues the setting before it, and
 * comment and blank lines never end a setting: they are kept, while the
 * continuation lines of a replaced or removed setting go with it. */
static int edit_text(const struct strbuf *in, struct edit *edits, size_t n, struct strbuf *out)
{
    const char *p = sb_str(in), *end = p + in->len;
    bool dropping = false;     /* inside a setting being replaced or removed */
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        const char *text = p;
        while (text < next && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\v'
                               || *text == '\f'))
            text++;
        if (text == next || *text == '\n' || *text == '#') {
            rc = sb_append(out, p, (size_t)(next - p));
        } else if (text != p) {
            if (!dropping)
                rc = sb_append(out, p, (size_t)(next - p));
        } else {
            const char *eq = memchr(p, '=', (size_t)(next - p));
            const char *name = p, *name_end = eq ? eq : p;
            trim_span(&name, &name_end);
            struct edit *e = eq ? find_edit(edits, n, name, (size_t)(name_end - name)) : NULL;
            dropping = e != NULL;
            if (!e)
                rc = sb_append(out, p, (size_t)(next - p));
            else if (e->found++ == 0 && e->value)
                rc = append_setting(out, e->name, e->value);
        }
        p = next;
    }
    bool newline_needed = in->len > 0 && in->data[in->len - 1] != '\n';
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (edits[i].found || !edits[i].value)
            continue;
        if (newline_needed && (rc = sb_appendc(out, '\n')) < 0)
            break;
        newline_needed = false;
        rc = append_setting(out, edits[i].name, edits[i].value);
    }
    return rc;
}

/* Replace path with text atomically: a temporary file in the same directory
 * (with the old file's mode and, as root, owner), fsync, rename, then fsync
 * the directory. A symbolic link is followed, so the link stays. */
static int replace_file(const char *path, const struct strbuf *text)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) < 0) {
        fprintf(stderr, "tern: %s: %s\n", path, strerror(errno));
        return -1;
    }
    const char *slash = strrchr(real, '/');
    char *dir = xstrndup(real, slash == real ? 1 : (size_t)(slash - real));
    struct strbuf tmp = STRBUF_INIT(PATH_MAX);
    int fd = -1, rc = -1;
    bool created = false;
    const char *failed = "create";
    if (sb_appendf(&tmp, "%s/.%s.XXXXXX", dir, slash + 1) < 0) {
        fprintf(stderr, "tern: %s: path too long\n", real);
        goto out;
    }
    if ((fd = mkostemp(tmp.data, O_CLOEXEC)) < 0)
        goto report;
    created = true;
    failed = "write";
    if (fchmod(fd, st.st_mode & 07777) < 0
        || (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
        || write_all(fd, sb_str(text), text->len) < 0 || fsync(fd) < 0)
        goto report;
    int closed = close(fd);
    fd = -1;
    if (closed < 0)
        goto report;
    failed = "rename";
    if (rename(tmp.data, real) < 0)
        goto report;
    created = false;
    if (fsync_dir(dir) < 0)
        fprintf(stderr, "tern: warning: cannot fsync directory %s: %s\n", dir, strerror(errno));
    rc = 0;
    goto out;
report:
    fprintf(stderr, "tern: cannot %s %s to replace %s: %s; %s is unchanged\n", failed,
            tmp.data, real, strerror(errno), real);
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp.data);
    sb_free(&tmp);
    free(dir);
    return rc;
}

static int edit_main_cf(int argc, char **argv, bool removing)
{
    if (argc == 0) {
        fprintf(stderr, "tern: conf %s needs %s\n", removing ? "-X" : "-e",
                removing ? "NAME..." : "NAME=VALUE...");
        return 2;
    }
    tern_load_config();
    struct edit *edits = xcalloc((size_t)argc, sizeof(*edits));
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        struct edit e;
        if (parse_edit(argv[i], removing, &e) < 0) {
            edits_free(edits, n);
            return 1;
        }
        struct edit *same = find_edit(edits, n, e.name, strlen(e.name));
        if (same) {                    /* the last of one name wins, as in main.cf */
            free(same->value);
            same->value = e.value;
            free(e.name);
        } else {
            edits[n++] = e;
        }
    }
    struct strbuf path = STRBUF_INIT(PATH_MAX), in = STRBUF_INIT(MAINCF_SIZE_LIMIT),
                  out = STRBUF_INIT(MAINCF_SIZE_LIMIT + 65536);
    int rc = 1;
    if (sb_appendf(&path, "%s/main.cf", cfg_confdir()) < 0) {
        fprintf(stderr, "tern: configuration directory name too long\n");
        goto out;
    }
    if (check_edits(edits, n) < 0) {
        fprintf(stderr, "tern: %s is unchanged\n", path.data);
        goto out;
    }
    if (read_whole_file(path.data, MAINCF_SIZE_LIMIT, &in) < 0)
        goto out;
    if (edit_text(&in, edits, n, &out) < 0) {
        fprintf(stderr, "tern: %s would become too large; it is unchanged\n", path.data);
        goto out;
    }
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        if (edits[i].found > 1)
            fprintf(stderr, "tern: warning: %s set %d times in %s; all %s\n", edits[i].name,
                    edits[i].found, path.data, removing ? "removed" : "replaced by one");
        if (removing && !edits[i].found)
            fprintf(stderr, "tern: warning: %s is not set in %s\n", edits[i].name, path.data);
        changed |= !removing || edits[i].found;
    }
    rc = changed && replace_file(path.data, &out) < 0 ? 1 : 0;
out:
    sb_free(&path);
    sb_free(&in);
    sb_free(&out);
    edits_free(edits, n);
    return rc;
}

/* ---- master.cf ---- */

#define SERVICE_COLUMNS 8

struct service_filter {
    char **args;
    int n;
    bool *matched;
};

/* A SERVICE or SERVICE/TYPE operand of -M; no operands match everything. */
static bool service_wanted(struct service_filter *f, const char *name, const char *type)
{
    bool wanted = f->n == 0;
    for (int i = 0; i < f->n; i++) {
        const char *arg = f->args[i], *slash = strrchr(arg, '/');
        size_t nlen = slash ? (size_t)(slash - arg) : strlen(arg);
        if (strlen(name) == nlen && memcmp(arg, name, nlen) == 0
            && (!slash || strcmp(slash + 1, type) == 0)) {
            f->matched[i] = true;
            wanted = true;
        }
    }
    return wanted;
}

/* Print one logical line of master.cf (continuations joined) normalized:
 * the columns aligned, words separated by one space, a "{ ... }" group kept
 * as one word. mastercf_load has already accepted the line. */
static void print_service(const char *line, struct service_filter *f)
{
    struct strbuf words[SERVICE_COLUMNS];
    for (int i = 0; i < SERVICE_COLUMNS; i++)
        sb_init(&words[i], 0);
    struct strbuf args = STRBUF_INIT(0);
    int count = 0;
    for (const char *p = line; *p;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p, *end;
        struct strbuf *w = count < SERVICE_COLUMNS ? &words[count] : &args;
        if (w == &args)
            sb_appendc(&args, ' ');
        if (*p == '{' && strchr(p, '}')) {
            end = strchr(p, '}');
            const char *in = p + 1, *in_end = end;
            trim_span(&in, &in_end);
            sb_appendf(w, "{ %.*s }", (int)(in_end - in), in);
            p = end + 1;
        } else {
            while (*p && !isspace((unsigned char)*p))
                p++;
            sb_append(w, start, (size_t)(p - start));
        }
        count++;
    }
    if (count >= SERVICE_COLUMNS && service_wanted(f, sb_str(&words[0]), sb_str(&words[1])))
        printf("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s%s\n", sb_str(&words[0]),
               sb_str(&words[1]), sb_str(&words[2]), sb_str(&words[3]), sb_str(&words[4]),
               sb_str(&words[5]), sb_str(&words[6]), sb_str(&words[7]), sb_str(&args));
    for (int i = 0; i < SERVICE_COLUMNS; i++)
        sb_free(&words[i]);
    sb_free(&args);
}

/* Logical lines of master.cf, read as mastercf_load reads them. Their
 * buffers need no limit of their own: text is bounded already. */
static void print_services(const struct strbuf *text, struct service_filter *f)
{
    struct strbuf logical = STRBUF_INIT(0);
    const char *p = sb_str(text), *end = p + text->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end, *q = p;
        while (q < next && isspace((unsigned char)*q))
            q++;
        if (q < next && *q != '#') {
            if (q == p && logical.len) {
                print_service(sb_str(&logical), f);
                sb_reset(&logical);
            }
            if (logical.len)
                sb_appendc(&logical, ' ');
            sb_append(&logical, q, (size_t)(next - q));
        }
        p = next;
    }
    if (logical.len)
        print_service(sb_str(&logical), f);
    sb_free(&logical);
}

static int show_services(int argc, char **argv)
{
    tern_load_config();
    struct strbuf path = STRBUF_INIT(PATH_MAX), err = STRBUF_INIT(4096),
                  text = STRBUF_INIT(MASTERCF_SIZE_LIMIT);
    struct service_filter f = { argv, argc, xcalloc((size_t)argc + 1, sizeof(bool)) };
    struct master_service *svcs = NULL;
    size_t nsvcs = 0;
    int rc = 1;
    if (sb_appendf(&path, "%s/master.cf", cfg_confdir()) < 0) {
        fprintf(stderr, "tern: configuration directory name too long\n");
        goto out;
    }
    if (mastercf_load(path.data, (int)cfg_int(P_default_process_limit), &svcs, &nsvcs, &err) < 0) {
        bool relative = strncmp(sb_str(&err), "master.cf:", 10) == 0;
        fprintf(stderr, "tern: %s%s%s\n", relative ? cfg_confdir() : "", relative ? "/" : "",
                sb_str(&err));
        goto out;
    }
    mastercf_free(svcs, nsvcs);
    if (read_whole_file(path.data, MASTERCF_SIZE_LIMIT, &text) < 0)
        goto out;
    print_services(&text, &f);
    rc = 0;
    for (int i = 0; i < argc; i++)
        if (!f.matched[i]) {
            fprintf(stderr, "tern: warning: %s: no such service in %s\n", argv[i], path.data);
            rc = 1;
        }
out:
    free(f.matched);
    sb_free(&path);
    sb_free(&err);
    sb_free(&text);
    return rc;
}

/* ---- the command ---- */

static int set_mode(struct conf_options *o, enum conf_mode mode)
{
    if (o->mode != MODE_EFFECTIVE && o->mode != mode) {
        fprintf(stderr, "tern: conf: -n, -d, -e, -X and -M exclude each other\n");
        return -1;
    }
    o->mode = mode;
    return 0;
}

int tern_cmd_conf(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 },
    };
    struct conf_options o = { MODE_EFFECTIVE, false };
    int c;
    optind = 0;     /* restart glibc's scan, which permutes options after operands */
    while ((c = getopt_long(argc, argv, "c:dehnxMX", long_options, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'H': conf_usage(stdout); return 0;
        case 'c': tern_confdir = optarg; break;
        case 'd': rc = set_mode(&o, MODE_DEFAULTS); break;
        case 'n': rc = set_mode(&o, MODE_SET); break;
        case 'e': rc = set_mode(&o, MODE_EDIT); break;
        case 'X': rc = set_mode(&o, MODE_REMOVE); break;
        case 'M': rc = set_mode(&o, MODE_SERVICES); break;
        case 'h': o.values_only = true; break;
        case 'x': break;
        default: conf_usage(stderr); return 2;
        }
        if (rc < 0)
            return 2;
    }
    argc -= optind;
    argv += optind;
    switch (o.mode) {
    case MODE_EDIT: return edit_main_cf(argc, argv, false);
    case MODE_REMOVE: return edit_main_cf(argc, argv, true);
    case MODE_SERVICES: return show_services(argc, argv);
    default: return show_parameters(argc, argv, &o);
    }
}
