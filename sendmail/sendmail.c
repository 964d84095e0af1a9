/* sendmail.c: the sendmail command, also installed as mailq and newaliases
 * (it looks at the name it was called by). Options are Postfix's. A message
 * read from standard input (or -bs SMTP) goes to tern-drop, which writes it
 * into maildrop/ for pickup, so mail is accepted even while Tern is
 * stopped. -bp, -bi and -q run `tern queue`, `tern aliases` and `tern
 * flush`. sendmail itself has no privileges: whoever runs it. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "sendmail.h"
#include "util.h"

enum sm_mode { MODE_DELIVER, MODE_QUEUE_LIST, MODE_ALIASES, MODE_FLUSH, MODE_SMTP, MODE_NOTHING };

static char *drop_program;

const char *sendmail_drop_program(void)
{
    return drop_program;
}

static void __attribute__((noreturn)) usage(const char *why)
{
    fprintf(stderr, "sendmail: %s\n"
            "usage: sendmail [-t] [-i] [-f sender] [-F full_name] [-N dsn] [-R hdrs|full]\n"
            "                [-V envid] [-C config_dir] [-v] [recipient ...]\n"
            "       sendmail -bp (mailq) | -bi (newaliases) | -bs | -q\n", why);
    exit(SM_EX_USAGE);
}

static void __attribute__((noreturn)) usage_value(const char *option, const char *value,
                                                   const char *expected)
{
    char text[400];
    snprintf(text, sizeof(text), "bad %s value \"%.100s\": expected %s", option, value, expected);
    usage(text);
}

/* -b: the modes Tern has. */
static enum sm_mode parse_mode(const char *arg)
{
    if (strcmp(arg, "m") == 0)
        return MODE_DELIVER;
    if (strcmp(arg, "p") == 0)
        return MODE_QUEUE_LIST;
    if (strcmp(arg, "i") == 0)
        return MODE_ALIASES;
    if (strcmp(arg, "s") == 0)
        return MODE_SMTP;
    usage_value("-b", arg, "m (deliver), p (mailq), i (newaliases) or s (SMTP on stdin)");
}

/* -N never, or a list of success, delay, failure. */
static void parse_notify(const char *arg, struct sm_options *o)
{
    if (maildrop_notify_canon(arg, o->notify, sizeof(o->notify)) < 0)
        usage_value("-N", arg, "never, or a comma list of success, delay and failure");
}

static const char *parse_ret(const char *arg)
{
    if (strcasecmp(arg, "full") == 0)
        return "FULL";
    if (strcasecmp(arg, "hdrs") == 0)
        return "HDRS";
    usage_value("-R", arg, "hdrs or full");
}

/* RFC 3461 ENVID: printable ASCII. */
static const char *parse_envid(const char *arg)
{
    for (const char *p = arg; *p; p++)
        if ((unsigned char)*p > 126)
            usage_value("-V", arg, "printable ASCII");
    if (!*arg || !maildrop_text_ok(arg, MAILDROP_ENVID_MAX))
        usage_value("-V", arg, "1 to 100 printable characters");
    return arg;
}

static int first_address(const char *addr, size_t len, void *ctx)
{
    char **out = ctx;
    if (*out)
        return -1;                               /* more than one */
    *out = xstrndup(addr, len);
    return 0;
}

/* -f: one address, with or without <> and a display name; "" and <> are
 * the null sender. */
static const char *parse_sender(const char *arg)
{
    char *text = NULL;
    struct address a;
    if (sendmail_address_list(arg, strlen(arg), first_address, &text) < 0)
        usage_value("-f", arg, "one address");
    if (!text)
        return "";
    enum address_error e = address_parse(text, strlen(text),
                                         ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8,
                                         &a, NULL);
    free(text);
    if (e != ADDR_OK || strlen(a.address) > MAILDROP_ADDR_MAX)
        usage_value("-f", arg, "an address");
    char *sender = xstrdup(a.address);
    address_free(&a);
    return sender;
}

/* -C: Postfix takes the main.cf file or its directory. */
static const char *parse_config(const char *arg)
{
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
        const char *slash = strrchr(arg, '/');
        return slash == arg ? "/" : slash ? xstrndup(arg, (size_t)(slash - arg)) : ".";
    }
    return arg;
}

/* -o: only -oi means something here; the others (-odb, -odi, -oem, -oA...)
 * are accepted and ignored, as Postfix does. */
static void parse_o(const char *arg, struct sm_options *o)
{
    if (strcmp(arg, "i") == 0)
        o->ignore_dots = true;
    else if (o->verbose)
        fprintf(stderr, "sendmail: option -o%s ignored\n", arg);
}

struct sm_args {
    enum sm_mode mode;
    const char *config;
    int first_rcpt;
};

static void parse_args(int argc, char **argv, struct sm_args *a, struct sm_options *o)
{
    int c;
    opterr = 0;
    while ((c = getopt(argc, argv, "+A:B:C:F:GIL:N:O:R:UV:X:b:f:h:imno:q::r:tv")) != -1) {
        switch (c) {
        case 'b': a->mode = parse_mode(optarg); break;
        case 'C': a->config = parse_config(optarg); break;
        case 'F':
            if (!maildrop_text_ok(optarg, MAILDROP_FULL_NAME_MAX))
                usage_value("-F", optarg, "at most 256 printable characters");
            o->full_name = optarg;
            break;
        case 'I': a->mode = MODE_ALIASES; break;
        case 'N': parse_notify(optarg, o); break;
        case 'R': o->ret = parse_ret(optarg); break;
        case 'V': o->envid = parse_envid(optarg); break;
        case 'f':
        case 'r': o->sender = parse_sender(optarg); break;
        case 'i': o->ignore_dots = true; break;
        case 'o': parse_o(optarg, o); break;
        case 'q':
            /* -qINTERVAL asks a daemon to run the queue periodically: Tern
             * always does, so it is ignored, as Postfix does */
            a->mode = optarg && isdigit((unsigned char)optarg[0]) ? MODE_NOTHING : MODE_FLUSH;
            break;
        case 't': o->extract = true; break;
        case 'v': o->verbose++; break;
        case 'A': case 'B': case 'G': case 'L': case 'O': case 'U': case 'X':
        case 'h': case 'm': case 'n':
            break;                              /* sendmail options with no meaning here */
        default: {
            char text[64];
            snprintf(text, sizeof(text), "unknown option -%c, or it needs a value", optopt);
            usage(text);
        }
        }
    }
    a->first_rcpt = optind;
}

/* mailq and newaliases are this program under other names. */
static enum sm_mode mode_by_name(const char *argv0)
{
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    if (strcmp(base, "mailq") == 0)
        return MODE_QUEUE_LIST;
    if (strcmp(base, "newaliases") == 0)
        return MODE_ALIASES;
    return MODE_DELIVER;
}

static void load_config(const char *config, struct sm_options *o)
{
    struct strbuf err = STRBUF_INIT(4096), path = STRBUF_INIT(4096);
    if (cfg_load(config, &err) < 0) {
        fprintf(stderr, "sendmail: %s\n", sb_str(&err));
        exit(SM_EX_CONFIG);
    }
    o->confdir = cfg_confdir();
    o->size_limit = (unsigned long long)cfg_size(P_message_size_limit);
    o->header_limit = (size_t)cfg_size(P_header_size_limit);
    sb_appendf(&path, "%s/tern-drop", cfg_str(P_daemon_directory));
    drop_program = xstrdup(sb_str(&path));
    sb_free(&path);
    sb_free(&err);
}

/* -bp, -bi, -q: the tern command does the work, with the same configuration. */
static void __attribute__((noreturn)) run_tern(const struct sm_options *o, const char *command)
{
    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/tern", cfg_str(P_command_directory));
    const char *argv[] = { sb_str(&path), "-c", o->confdir, command, NULL };
    fflush(stdout);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "sendmail: cannot run %s %s: %s (set command_directory in %s/main.cf)\n",
            argv[0], command, strerror(errno), o->confdir);
    exit(SM_EX_UNAVAILABLE);
}

/* The recipients given as arguments, each an address list. */
static void add_arguments(struct sm_rcpts *rcpts, const struct sm_options *o, int n, char **args)
{
    for (int i = 0; i < n; i++) {
        const char *why;
        char bad[201], text[600];
        if (sendmail_rcpts_add_list(rcpts, args[i], o->notify, &why, bad) < 0) {
            snprintf(text, sizeof(text), "recipient \"%.200s\": %s", *bad ? bad : args[i], why);
            usage(text);
        }
    }
}

/* Read the message and hand it to tern-drop; the exit status. */
static int deliver(const struct sm_options *o, int n, char **args)
{
    struct sm_rcpts rcpts = { NULL, NULL, 0, 0 };
    struct strbuf piece = STRBUF_INIT(0);
    struct sm_input in;
    struct sm_drop d;
    char id[QUEUE_ID_SIZE];
    int rc = 0, got;
    add_arguments(&rcpts, o, n, args);
    sendmail_input_init(&in, stdin, o->ignore_dots, false, o->size_limit);
    if (o->extract && (rc = sendmail_extract_recipients(&in, o, &rcpts, &piece)) != 0)
        goto out;
    if (rcpts.n == 0) {
        fprintf(stderr, "sendmail: no recipients: give them as arguments, or use -t to take "
                "them from the To:, Cc: and Bcc: headers\n");
        rc = SM_EX_USAGE;
        goto out;
    }
    if (sendmail_drop_start(&d, o, o->sender, o->ret, o->envid, &rcpts) < 0) {
        rc = SM_EX_TEMPFAIL;
        goto out;
    }
    got = 0;
    do {                          /* until the end, or until tern-drop gave up */
        sendmail_drop_content(&d, piece.data, piece.len);
        sb_reset(&piece);
    } while (!d.failed && (got = sendmail_input_read(&in, &piece)) > 0);
    if (got < 0) {
        fprintf(stderr, "sendmail: message too big: over message_size_limit (%llu bytes)\n",
                o->size_limit);
        sendmail_drop_abort(&d);
        rc = SM_EX_DATAERR;
        goto out;
    }
    rc = sendmail_drop_finish(&d, id);
    if (rc == 0 && o->verbose)
        fprintf(stderr, "sendmail: queued in maildrop as %s for %zu recipient%s\n", id, rcpts.n,
                rcpts.n == 1 ? "" : "s");
out:
    sendmail_rcpts_free(&rcpts);
    sb_free(&piece);
    return rc;
}

int main(int argc, char **argv)
{
    struct sm_options o;
    struct sm_args a = { mode_by_name(argv[0]), NULL, 0 };
    memset(&o, 0, sizeof(o));
    command_start("sendmail", SM_EX_TEMPFAIL);
    signal(SIGPIPE, SIG_IGN);       /* a tern-drop that went away is an error, not a signal */
    parse_args(argc, argv, &a, &o);
    load_config(a.config, &o);
    switch (a.mode) {
    case MODE_QUEUE_LIST: run_tern(&o, "queue");
    case MODE_ALIASES: run_tern(&o, "aliases");
    case MODE_FLUSH: run_tern(&o, "flush");
    case MODE_SMTP: return sendmail_smtp_session(&o);
    case MODE_NOTHING: return 0;
    case MODE_DELIVER: break;
    }
    return deliver(&o, argc - a.first_rcpt, argv + a.first_rcpt);
}
