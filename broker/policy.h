/*
 * policy.h — what the gateway allows: which upstreams a repository's
 * classifications may reach, data residency, what each scanner rule does for
 * a repository, per-user request rates and daily token budgets.
 *
 * Rules come from [policy] and [gateway] (tessera.conf(5)):
 *   classified_upstreams  "phi:baa|on_prem,pci:baa|on_prem" (the default): a
 *                         repository classified phi may only reach upstreams
 *                         that are baa or on_prem; an entry may also name
 *                         upstreams, "any" or "none";
 *   allowed_regions       upstream regions data may go to (empty: any);
 *   scanner_action        "RULE[@CLASS]:block|redact|log|off", where RULE is a
 *                         scanner rule (us_ssn, jwt, mrn …) or a group (secrets,
 *                         phi, pci) and CLASS a repository classification or
 *                         "none" (unclassified). The most specific entry wins;
 *                         among classifications of one repository the
 *                         strictest. Defaults: secrets block everywhere, phi
 *                         rules block in phi repositories and pci rules in pci
 *                         repositories, and are logged elsewhere;
 *   model_access          "MODEL_GLOB:role|group|any|none" — which roles and
 *                         groups may use which models (model_access.h);
 *                         models no entry matches are allowed;
 *   rate_limit            requests per minute per user across all replicas:
 *                         fixed UTC-minute windows in Postgres (rate_windows),
 *                         from which each replica leases slices (1, 2, 4 … up
 *                         to limit/10 requests) and serves requests locally,
 *                         so only one request per slice waits for Postgres.
 *                         A spent window is 429 with Retry-After to its end.
 *                         Fixed windows: a burst straddling a minute boundary
 *                         can get up to twice the limit through.
 *                         While Postgres is unreachable each replica falls
 *                         back to a local token bucket of rate_limit (the
 *                         limit then holds per replica; retried after 5 s);
 *   daily_token_budget    tokens per user per UTC day (usage_counters, all replicas).
 * A request's repository classifications come with its token check
 * (struct principal, as fresh as the token cache: a classification change
 * is notified like a permission change). Users' membership of the groups
 * model_access names is read from Postgres and cached for 5 s.
 * Thread-safe: compiled rules are immutable; the caches and the rate state
 * have their own mutexes (leaf locks, never held across a Postgres call).
 */
#ifndef TSR_POLICY_H
#define TSR_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "scanner.h"
#include "upstream.h"

enum scan_action { ACT_OFF, ACT_LOG, ACT_REDACT, ACT_BLOCK };

struct policy;

/* Compile the rules of b->cfg for scanner s. Errors (unknown rule, bad action) go to err. Caller frees with policy_free(). */
tsr_rc policy_new(struct broker *b, const struct scanner *s, struct policy **out, char *err, size_t errlen) TSR_WUR;
void policy_free(struct policy *p);

/* May data of a repository with classes reach u? TSR_DENIED with why naming the rule otherwise. */
tsr_rc policy_upstream_ok(const struct policy *p, const char *classes, const struct upstream *u, char *why,
			  size_t whylen) TSR_WUR;

/* The action of every scanner rule for a repository with classes (act[rule], SCAN_MAX_RULES entries). */
void policy_scan_actions(const struct policy *p, const char *classes, enum scan_action *act);
const char *policy_action_name(enum scan_action a);

/*
 * May a user with role bits roles (enum role_bits) use model under
 * model_access? TSR_DENIED with why naming the entry; TSR_UNAVAILABLE when
 * the user's groups had to be read and Postgres could not be reached.
 */
tsr_rc policy_model_ok(struct policy *p, const char *model, int64_t user_id, unsigned roles, char *why,
		       size_t whylen) TSR_WUR;

/* Count a request of user_id against rate_limit; TSR_RATE_LIMITED with *retry_after (s) when over. */
tsr_rc policy_rate(struct policy *p, int64_t user_id, int *retry_after) TSR_WUR;

/*
 * Reserve est tokens of user_id's daily budget (no-op without a budget).
 * TSR_RATE_LIMITED with why and *retry_after (seconds to UTC midnight) when
 * it is spent; TSR_UNAVAILABLE without Postgres.
 */
tsr_rc policy_budget_reserve(struct policy *p, int64_t user_id, int64_t est, int *retry_after, char *why,
			     size_t whylen) TSR_WUR;
/* Settle a reservation with what the upstream reported (best effort; logs failures). */
void policy_budget_settle(struct policy *p, int64_t user_id, int64_t reserved, int64_t used, int64_t bytes_out);
bool policy_has_budget(const struct policy *p);
/*
 * Can this user's next request pass the checks above without a query (its
 * model_access groups cached, its rate lease not used up, no budget)? For
 * the gateway's fast check (http.h); a guess, never needed for correctness.
 */
bool policy_fast(struct policy *p, int64_t user_id);

#endif
