/* postscreen_dnsbl.c: postscreen's weighted DNSBL/DNSWL score. Each entry
 * of postscreen_dnsbl_sites is domain[=filter][*weight]; all lists are
 * asked in parallel when the greet wait begins, and each one that lists
 * the client (an A answer that matches its filter) adds its weight, which
 * is negative for an allowlist. postscreen.c compares the sum with
 * postscreen_dnsbl_threshold and postscreen_dnsbl_allowlist_threshold.
 * A list that fails or does not answer in time counts as not listing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns_event.h"
#include "dns_rbl.h"
#include "log.h"
#include "maps.h"
#include "postscreen.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

/* One entry: "zen.example", "zen.example*2", "wl.example=127.0.[0..255].[2;3]*-5". */
static void parse_site(const char *word, struct postscreen_dnsbl_site *site)
{
    char *w = xstrdup(word);
    long weight = 1;
    char *star = strrchr(w, '*');
    if (star) {
        *star = 0;
        if (parse_long(star + 1, -10000, 10000, &weight) < 0)
            msg_fatal("postscreen_dnsbl_sites: bad weight in \"%s\"", word);
    }
    char *eq = strchr(w, '=');
    if (eq) {
        *eq = 0;
        if (!dns_rbl_filter_valid(eq + 1))
            msg_fatal("postscreen_dnsbl_sites: bad reply filter in \"%s\"", word);
        site->filter = xstrdup(eq + 1);
    }
    size_t n = strlen(w);
    if (n > 0 && w[n - 1] == '.')
        w[--n] = 0;
    if (n == 0 || n > 200 || strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789.-_") != n)
        msg_fatal("postscreen_dnsbl_sites: bad domain in \"%s\"", word);
    site->domain = str_lower(w);
    site->weight = (int)weight;
}

void postscreen_dnsbl_configure(void)
{
    struct postscreen_cfg *c = &psc_cfg;
    size_t n;
    char **words = cfg_list_split(cfg_str(P_postscreen_dnsbl_sites), &n);
    if (n > PSC_DNSBL_SITES_MAX)
        msg_fatal("postscreen_dnsbl_sites: more than %d lists", PSC_DNSBL_SITES_MAX);
    for (size_t i = 0; i < n; i++)
        parse_site(words[i], &c->sites[i]);
    c->nsites = n;
    cfg_list_free(words, n);
    c->dnsbl_threshold = cfg_int(P_postscreen_dnsbl_threshold);
    c->dnsbl_allow_threshold = cfg_int(P_postscreen_dnsbl_allowlist_threshold);
    c->dnsbl_timeout = cfg_time(P_postscreen_dnsbl_timeout);
    const char *map = cfg_str(P_postscreen_dnsbl_reply_map);
    struct strbuf err = STRBUF_INIT(1024);
    if (*map && !(c->dnsbl_reply_map = maplist_open(map, &err)))
        msg_fatal("postscreen_dnsbl_reply_map: %s", sb_str(&err));
    if (n) {
        c->dns = dnsev_open(cfg_str(P_postscreen_dns_servers), (int)c->dnsbl_timeout, &err);
        if (!c->dns)
            msg_fatal("main.cf: postscreen_dns_servers: %s", sb_str(&err));
        dnsev_attach(c->dns, server_event_base());
    }
    sb_free(&err);
}

static void dnsbl_answer(void *ctx, const struct dnsev_answer *ans)
{
    struct postscreen_dnsbl_ref *ref = ctx;
    struct postscreen_session *s = ref->s;
    const struct postscreen_dnsbl_site *site = &psc_cfg.sites[ref->site];
    s->queries[ref->site] = NULL;
    if (ans->status == DNS_OK) {
        for (size_t i = 0; i < ans->naddr; i++) {
            if (dns_rbl_listing(site->filter, &ans->addrs[i])) {
                s->dnsbl_score += site->weight;
                /* the reply names the list that weighs most against the client */
                if (site->weight > 0 && site->weight > s->dnsbl_name_weight) {
                    s->dnsbl_name_weight = site->weight;
                    str_copy(s->dnsbl_name, sizeof(s->dnsbl_name), site->domain);
                }
                break;
            }
        }
    } else if (ans->status == DNS_TEMPFAIL) {
        msg_warn("%s: DNSBL lookup under %s failed: %s", s->desc, site->domain,
                 ans->why ? ans->why : "temporary failure");
    }
    if (s->dns_pending > 0 && --s->dns_pending == 0)
        postscreen_dnsbl_all_answered(s);
}

void postscreen_dnsbl_start(struct postscreen_session *s)
{
    s->dnsbl_score = 0;
    s->dns_pending = 0;
    for (size_t i = 0; i < psc_cfg.nsites; i++) {
        char query[DNS_NAME_MAX + 64];
        if (!dns_rbl_query_name(s->addr, psc_cfg.sites[i].domain, query, sizeof(query)))
            continue;
        s->refs[i] = (struct postscreen_dnsbl_ref){ s, i };
        s->queries[i] = dnsev_lookup(psc_cfg.dns, query, DNSEV_A, dnsbl_answer, &s->refs[i]);
        if (s->queries[i])
            s->dns_pending++;
    }
}

void postscreen_dnsbl_cancel(struct postscreen_session *s)
{
    for (size_t i = 0; i < psc_cfg.nsites; i++) {
        if (s->queries[i]) {
            dnsev_cancel(s->queries[i]);
            s->queries[i] = NULL;
        }
    }
    s->dns_pending = 0;
}

void postscreen_dnsbl_reply(struct postscreen_session *s)
{
    const char *name = s->dnsbl_name[0] ? s->dnsbl_name : "a DNS blocklist";
    struct strbuf shown = STRBUF_INIT(256);
    if (psc_cfg.dnsbl_reply_map && s->dnsbl_name[0]
        && maplist_lookup(psc_cfg.dnsbl_reply_map, s->dnsbl_name, &shown) > 0)
        name = sb_str(&shown);
    snprintf(s->reject_buf, sizeof(s->reject_buf),
             "5.7.1 Service unavailable; client [%s] blocked using %s", s->addr, name);
    sb_free(&shown);
}
