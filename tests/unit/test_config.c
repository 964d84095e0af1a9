/* test_config.c: unit tests of the main.cf reader: continuation lines,
 * comments, $name and ${name} expansion, -o overrides, typed values,
 * unknown-parameter reporting and hostile files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-config-XXXXXX";

static void write_main_cf(const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

static int load(const char *text, struct strbuf *err)
{
    write_main_cf(text);
    sb_reset(err);
    return cfg_load(dir, err);
}

static int unknown_count;
static char unknown_names[256];
static void note_unknown(const char *name, const char *file, int line, void *ctx)
{
    unknown_count++;
    strncat(unknown_names, name, sizeof(unknown_names) - strlen(unknown_names) - 2);
    strcat(unknown_names, " ");
}

int main(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (!mkdtemp(dir))
        return 1;

    CHECK(load("# comment\n"
               "myhostname = mx.example.com\n"
               "mydestination = $myhostname,\n"
               "   localhost.$mydomain\n"
               "# a comment inside a logical line\n"
               "\tlocalhost\n"
               "mail_name = ${myhostname}-x $$literal\n"
               "message_size_limit = 1000\n"
               "smtpd_timeout = 5m\n"
               "disable_vrfy_command = yes\n"
               "my_restrictions = permit\n"
               "relay_domains = $my_restrictions\n"
               "foo_unknown = 1\n", &err) == 0);
    CHECK_STR(cfg_str(P_mydestination), "mx.example.com, localhost.example.com localhost");
    CHECK_STR(cfg_str(P_mydomain), "example.com");
    CHECK_STR(cfg_str(P_mail_name), "mx.example.com-x $literal");
    CHECK(cfg_size(P_message_size_limit) == 1000);
    CHECK(cfg_time(P_smtpd_timeout) == 300);
    CHECK(cfg_bool(P_disable_vrfy_command) == true);
    CHECK(cfg_int(P_smtpd_recipient_limit) == 1000);   /* default */
    CHECK_STR(cfg_str(P_relay_domains), "permit");
    CHECK_STR(cfg_get("my_restrictions"), "permit");
    CHECK(cfg_get("no_such_thing") == NULL);
    unknown_count = 0;
    cfg_unknown(note_unknown, NULL);
    CHECK(unknown_count == 1);
    CHECK_STR(unknown_names, "foo_unknown ");

    /* -o overrides win and reset the expansion cache */
    cfg_override("myhostname", "other.example.org");
    CHECK_STR(cfg_str(P_mydomain), "example.org");
    CHECK_STR(cfg_str(P_mydestination), "other.example.org, localhost.example.org localhost");

    /* conditional expansion */
    CHECK(load("a_param = x\nb_param = \nmail_name = ${a_param?yes}${b_param?no}${b_param:empty}\n", &err) == 0);
    CHECK_STR(cfg_str(P_mail_name), "yesempty");
    /* braces nest, $(name) is ${name}, and emptiness is judged expanded */
    CHECK(load("a_param = x\nc_param = $b_param\nb_param =\n"
               "mail_name = ${a_param?<${b_param:$(a_param)}>}${c_param:-c empty}\n", &err) == 0);
    CHECK_STR(cfg_str(P_mail_name), "<x>-c empty");
    /* an undefined name is empty */
    CHECK(load("mail_name = [$no_such_param]\n", &err) == 0);
    CHECK_STR(cfg_str(P_mail_name), "[]");
    /* a $ without a name, an unterminated ${ and a bad name inside braces
     * are errors (written $$ for a literal $) */
    const char *bad[] = { "a $ b", "x$", "${myhostname", "$(myhostname", "${my-name}", "${}",
                          "${a_param?${myhostname}" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "a_param = x\nmail_name = %s\n", bad[i]);
        CHECK(load(text, &err) == 0);
        sb_reset(&err);
        CHECK(cfg_check_param("mail_name", &err) == -1);
        CHECK(strstr(sb_str(&err), "cannot expand") != NULL);
    }
    CHECK(load("mail_name = 5$$\n", &err) == 0);
    CHECK_STR(cfg_str(P_mail_name), "5$");
    /* mydomain's default follows the expanded myhostname; a loop is an error */
    CHECK(load("my_host = mx.$my_dom\nmy_dom = example.net\nmyhostname = $my_host\n", &err) == 0);
    CHECK_STR(cfg_str(P_mydomain), "example.net");
    CHECK(load("myhostname = mx.$mydomain\nmail_name = $mydomain\n", &err) == 0);
    sb_reset(&err);
    CHECK(cfg_validate(&err) >= 1);

    /* the list splitter keeps inline map braces together */
    size_t n;
    char **list = cfg_list_split("hash:/a, inline:{ a=b, c=d }  pcre:/x,", &n);
    CHECK(n == 3);
    CHECK_STR(list[1], "inline:{ a=b, c=d }");
    cfg_list_free(list, n);

    /* validation reports bad typed values with their line */
    CHECK(load("smtpd_timeout = 5 minutes\nmessage_size_limit = -1\n", &err) == 0);
    sb_reset(&err);
    CHECK(cfg_validate(&err) == 2);
    CHECK(strstr(sb_str(&err), "main.cf:1: parameter smtpd_timeout") != NULL);

    /* syntax errors */
    CHECK(load("this line has no equals sign\n", &err) == -1);
    CHECK(strstr(sb_str(&err), ":1: missing '='") != NULL);
    CHECK(load("  leading continuation = x\n", &err) == -1);
    CHECK(load("bad name! = x\n", &err) == -1);
    CHECK(load("a = b\n\0hidden = 1\n", &err) == 0);   /* NUL ends the C string we write */

    /* expansion loops are detected by validation */
    CHECK(load("a_loop = $b_loop\nb_loop = $a_loop\nmail_name = $a_loop\n", &err) == 0);
    sb_reset(&err);
    CHECK(cfg_validate(&err) >= 1);

    /* per-transport settings and the check of one parameter (`tern conf -e`) */
    CHECK(cfg_is_per_transport("relay_destination_recipient_limit"));
    CHECK(!cfg_is_per_transport("_destination_recipient_limit"));
    CHECK(!cfg_is_per_transport("smtpd_timeout"));
    CHECK_STR(cfg_per_transport_default("smtp_initial_destination_concurrency"),
              "initial_destination_concurrency");
    CHECK(load("my_time = soon\nsmtpd_timeout = $my_time\nmax_use = 5\n"
               "smtp_destination_concurrency_limit = lots\n"
               "relay_destination_concurrency_limit = 4\n", &err) == 0);
    sb_reset(&err);
    CHECK(cfg_check_param("smtpd_timeout", &err) == -1);
    CHECK(strstr(sb_str(&err), "parameter smtpd_timeout: bad time value \"soon\"") != NULL);
    CHECK(cfg_check_param("max_use", &err) == 0);
    CHECK(cfg_check_param("my_time", &err) == 0);       /* untyped: any value */
    CHECK(cfg_check_param("smtp_destination_concurrency_limit", &err) == -1);
    CHECK(cfg_check_param("relay_destination_concurrency_limit", &err) == 0);
    /* TRANSPORT_time_limit (the pipe agent's) takes a time */
    CHECK_STR(cfg_per_transport_default("dovecot_time_limit"), "command_time_limit");
    CHECK(cfg_per_transport_check("dovecot_time_limit", "30s") == 0);
    CHECK(cfg_per_transport_check("dovecot_time_limit", "60") == 0);
    CHECK(cfg_per_transport_check("dovecot_time_limit", "soon") == -1);
    CHECK(cfg_per_transport_check("relay_destination_recipient_limit", "30s") == -1);
    cfg_override("my_time", "10m");
    CHECK(cfg_check_param("smtpd_timeout", &err) == 0);

    /* time and size parsing */
    CHECK(parse_time_value("10", 's') == 10);
    CHECK(parse_time_value("2h", 's') == 7200);
    CHECK(parse_time_value("3", 'd') == 3 * 86400);
    CHECK(parse_time_value("1x", 's') == -1);
    CHECK(parse_time_value("", 's') == -1);
    CHECK(parse_time_value("99999999999999999999", 's') == -1);
    CHECK(parse_size_value("10k") == 10240);
    CHECK(parse_size_value("10kb") == -1);

    /* a missing main.cf is an error that names the file */
    char path[256];
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    unlink(path);
    sb_reset(&err);
    CHECK(cfg_load(dir, &err) == -1);
    CHECK(strstr(sb_str(&err), "main.cf") != NULL);
    rmdir(dir);
    sb_free(&err);
    return check_summary();
}
