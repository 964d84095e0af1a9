/* test_sasl_proto.c: unit tests of base64 (RFC 4648 vectors, strict
 * refusal of bad padding, bad characters and non-canonical bits) and of the
 * Dovecot authentication protocol lines: the handshake, OK/FAIL/CONT
 * replies with escapes, and the malformed lines that must end a
 * connection; and of the password back-end's dummy check, which must cost
 * what a known user's check costs. */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "check.h"
#include "dovecot_auth.h"
#include "passwd_check.h"
#include "strbuf.h"

static const char *enc(const char *in)
{
    static struct strbuf out = STRBUF_INIT(4096);
    sb_reset(&out);
    base64_encode(&out, in, strlen(in));
    return sb_str(&out);
}

static const char *dec(const char *in)
{
    static struct strbuf out = STRBUF_INIT(4096);
    sb_reset(&out);
    if (base64_decode(&out, in, strlen(in)) < 0)
        return NULL;
    return sb_str(&out);
}

static void test_base64(void)
{
    static const char *vec[][2] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        CHECK_STR(enc(vec[i][0]), vec[i][1]);
        CHECK_STR(dec(vec[i][1]), vec[i][0]);
    }
    struct strbuf out = STRBUF_INIT(100);
    CHECK(base64_decode(&out, "AGFsaWNlAHNlY3JldA==", 20) == 0 && out.len == 13
          && memcmp(out.data, "\0alice\0secret", 13) == 0);
    sb_free(&out);
    const char *bad[] = { "Zg", "Zg=", "Z===", "====", "Zm9v=", "Zg==Zg==", "Zm 9v", "Zm9v\n",
                          "Zh==", "Zm9=", "*abc", "ab-c", "=" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(dec(bad[i]) == NULL);
    struct strbuf small = STRBUF_INIT(2);
    CHECK(base64_decode(&small, "Zm9v", 4) == -1);
    sb_free(&small);
}

static int parse(const char *text, struct dovecot_line *l, char **keep)
{
    size_t n = strlen(text);
    *keep = malloc(n + 1);
    memcpy(*keep, text, n + 1);
    return dovecot_parse_line(*keep, n, l);
}

static void test_dovecot_lines(void)
{
    struct dovecot_line l;
    char *buf;
    CHECK(parse("VERSION\t1\t2", &l, &buf) == 0 && l.type == DOVECOT_VERSION && l.major == 1
          && l.minor == 2);
    free(buf);
    CHECK(parse("MECH\tCRAM-MD5\tdictionary\tactive\tnew-flag", &l, &buf) == 0
          && l.type == DOVECOT_MECH && strcmp(l.mech, "CRAM-MD5") == 0
          && l.mech_flags == (DOVECOT_MECH_DICTIONARY | DOVECOT_MECH_ACTIVE));
    free(buf);
    CHECK(parse("DONE", &l, &buf) == 0 && l.type == DOVECOT_DONE);
    free(buf);
    CHECK(parse("OK\t7\tuser=alice\tauthz", &l, &buf) == 0 && l.type == DOVECOT_OK && l.id == 7);
    CHECK_STR(l.user, "alice");
    free(buf);
    CHECK(parse("FAIL\t8\treason=bad\001tpass\001\061\ttemp\tuser=bob", &l, &buf) == 0
          && l.type == DOVECOT_FAIL && l.temp && l.id == 8);
    CHECK_STR(l.user, "bob");
    CHECK_STR(l.reason, "bad pass ");     /* control characters become spaces */
    free(buf);
    CHECK(parse("FAIL\t8\treason=Password expired", &l, &buf) == 0 && !l.temp);
    CHECK_STR(l.reason, "Password expired");
    free(buf);
    CHECK(parse("CONT\t9\tVXNlcm5hbWU6", &l, &buf) == 0 && l.type == DOVECOT_CONT);
    CHECK_STR(l.data, "VXNlcm5hbWU6");
    free(buf);
    CHECK(parse("CONT\t9", &l, &buf) == 0 && l.type == DOVECOT_CONT);
    CHECK_STR(l.data, "");
    free(buf);
    CHECK(parse("SOMETHING\tnew", &l, &buf) == 0 && l.type == DOVECOT_OTHER);
    free(buf);
    const char *bad[] = {
        "VERSION", "VERSION\tone\t2", "MECH", "MECH\tpl ain", "MECH\t", "MECH\tABCDEFGHIJKLMNOPQRSTU",
        "OK", "OK\t", "OK\tx", "OK\t12345678901", "OK\t1\tuser=a\001", "OK\t1\tuser=a\001x",
        "FAIL\t1\treason=\x01", "CONT\t1\tnot base64!", "CONT\t1\tabc",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], &l, &buf);
        CHECK(rc == -1);
        if (rc != -1)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        free(buf);
    }
    char nul[] = "OK\t1\0user=x";
    CHECK(dovecot_parse_line(nul, sizeof(nul) - 1, &l) == -1);
    char *huge = malloc(DOVECOT_LINE_MAX + 10);
    memset(huge, 'A', DOVECOT_LINE_MAX + 9);
    CHECK(dovecot_parse_line(huge, DOVECOT_LINE_MAX + 9, &l) == -1);
    free(huge);
}

static void test_dovecot_requests(void)
{
    struct strbuf out = STRBUF_INIT(1024);
    CHECK(dovecot_format_hello(&out, 42) == 0);
    CHECK_STR(sb_str(&out), "VERSION\t1\t1\nCPID\t42\n");
    sb_reset(&out);
    CHECK(dovecot_format_auth(&out, 3, "PLAIN", "smtp", "127.0.0.1", "192.0.2.1", true,
                              "AGEAYg==") == 0);
    CHECK_STR(sb_str(&out), "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\t"
              "rip=192.0.2.1\tsecured\tresp=AGEAYg==\n");
    sb_reset(&out);
    CHECK(dovecot_format_auth(&out, 4, "LOGIN", "smtp", "", "", false, NULL) == 0);
    CHECK_STR(sb_str(&out), "AUTH\t4\tLOGIN\tservice=smtp\tnologin\n");
    sb_reset(&out);
    CHECK(dovecot_format_auth(&out, 5, "PL\tAIN", "smtp", "", "", false, NULL) == -1);
    CHECK(dovecot_format_auth(&out, 5, "PLAIN", "smtp", "", "", false, "a\nb") == -1);
    CHECK(out.len == 0);
    CHECK(dovecot_format_cont(&out, 6, "") == 0);
    CHECK_STR(sb_str(&out), "CONT\t6\t\n");
    sb_free(&out);
}

/* The text of a hash up to its last '$': method, cost and salt. */
static size_t method_len(const char *hash)
{
    const char *last = strrchr(hash, '$');
    return last ? (size_t)(last - hash) : 0;
}

/* A site whose users all have SHA-512 hashes: a name the table does not
 * have must be checked with a SHA-512 setting of the same rounds, not
 * with a yescrypt one that costs ten times as much; otherwise the time of
 * a failed AUTH tells which names exist. */
static void test_dummy_follows_known(void)
{
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    const char *h = crypt_r("secret", "$6$rounds=20000$0123456789abcdef$", &cd);
    CHECK(h && strncmp(h, "$6$rounds=20000$", 16) == 0);
    char path[] = "/tmp/test_passwd.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "alice %s\nbob notahash\n", h);
    fclose(f);
    struct strbuf err = STRBUF_INIT(256), spec = STRBUF_INIT(256);
    sb_appendf(&spec, "texthash:%s", path);
    CHECK(passwd_check_open(sb_str(&spec), &err) == 0);
    char setting[PASSWD_HASH_MAX];
    bool known, bad;
    CHECK(passwd_check_setting("mallory", setting, sizeof(setting), &known) == 0 && !known);
    CHECK(setting[0] == '$');    /* a fresh setting before any user is known */
    CHECK(passwd_check_setting("alice", setting, sizeof(setting), &known) == 0 && known);
    CHECK_STR(setting, h);
    CHECK(passwd_check_verify("secret", setting, known, &bad) && !bad);
    CHECK(!passwd_check_verify("wrong", setting, known, &bad) && !bad);
    CHECK(passwd_check_setting("mallory", setting, sizeof(setting), &known) == 0 && !known);
    CHECK(method_len(setting) == method_len(h) && strncmp(setting, h, method_len(h)) == 0);
    /* the right password of a known user never opens an unknown one */
    CHECK(!passwd_check_verify("secret", setting, known, &bad) && !bad);
    /* a value that is no hash is not taken as the model */
    CHECK(passwd_check_setting("bob", setting, sizeof(setting), &known) == 0);
    CHECK(!passwd_check_verify("x", setting, known, &bad));
    CHECK(passwd_check_setting("mallory", setting, sizeof(setting), &known) == 0 && !known);
    CHECK(strncmp(setting, "$6$rounds=20000$", 16) == 0);
    unlink(path);
    sb_free(&err);
    sb_free(&spec);
}

int main(void)
{
    test_dummy_follows_known();
    test_base64();
    test_dovecot_lines();
    test_dovecot_requests();
    return check_summary();
}
