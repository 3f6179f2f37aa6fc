/*
 * cmd_upstream.c — `tessera upstream list|show NAME`: the LLM upstreams
 * tesserad forwards to (admin and security roles). Key material is never
 * shown; the active key is named by its version and fingerprint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *s_or(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v && *v ? v : dflt;
}

static void models_text(json_t *u, char *out, size_t n)
{
	out[0] = '\0';
	size_t used = 0, i;
	json_t *m;
	json_array_foreach (json_object_get(u, "models"), i, m) {
		int w = snprintf(out + used, n - used, "%s%s", used ? "," : "", json_string_value(m));
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
	if (!used)
		snprintf(out, n, "(any)");
}

/* "40s", "12m", "5h", "31d": a key's age at a glance. */
static void age_text(long long s, char *out, size_t n)
{
	if (s < 120)
		snprintf(out, n, "%llds", s);
	else if (s < 7200)
		snprintf(out, n, "%lldm", s / 60);
	else if (s < 2 * 86400)
		snprintf(out, n, "%lldh", s / 3600);
	else
		snprintf(out, n, "%lldd", s / 86400);
}

static int cmd_upstream_list(struct client *c, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "tessera upstream list: unexpected argument '%s'\n", argv[1]);
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply;
	if ((r = cli_call(c, "upstream list", "GET", "/admin/v1/upstreams", NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("%-16s %-18s %-8s %-4s %-7s %-4s %-40s %-6s %-18s %s\n", "NAME", "KIND", "REGION", "BAA", "ON_PREM",
		       "KEY", "MODELS", "AGE", "STATE", "NEXT_ROTATION");
		size_t i;
		json_t *u;
		json_array_foreach (json_object_get(reply, "upstreams"), i, u) {
			char models[512], key[16], age[16] = "-", state[32] = "-";
			models_text(u, models, sizeof(models));
			json_t *k = json_object_get(u, "active_key");
			long long retiring = (long long)json_integer_value(json_object_get(u, "keys_retiring"));
			if (json_is_object(k)) {
				snprintf(key, sizeof(key), "v%lld", (long long)json_integer_value(json_object_get(k, "version")));
				age_text((long long)json_integer_value(json_object_get(k, "age_s")), age, sizeof(age));
				if (retiring)
					snprintf(state, sizeof(state), "active+%lld retiring", retiring);
				else
					snprintf(state, sizeof(state), "active");
			} else {
				snprintf(key, sizeof(key), "-");
			}
			printf("%-16s %-18s %-8s %-4s %-7s %-4s %-40s %-6s %-18s %s%s\n", s_or(u, "name", "?"),
			       s_or(u, "kind", "?"), s_or(u, "region", "-"),
			       json_is_true(json_object_get(u, "baa")) ? "yes" : "no",
			       json_is_true(json_object_get(u, "on_prem")) ? "yes" : "no", key, models, age, state,
			       json_is_object(k) ? s_or(k, "next_rotation_at", "-") : "-",
			       json_is_true(json_object_get(u, "removed")) ? " (removed from config)" : "");
			if (json_is_object(k) && json_is_true(json_object_get(k, "rotation_due")) &&
			    !json_is_true(json_object_get(u, "removed")))
				fprintf(stderr,
					"reminder: the key of upstream %s is %s old, older than its rotation period (%s): "
					"tessera rotate upstream %s --key-file FILE\n",
					s_or(u, "name", "?"), age, s_or(u, "rotation_period", "?"), s_or(u, "name", "?"));
		}
	}
	json_decref(reply);
	return 0;
}

static int cmd_upstream_show(struct client *c, int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "Usage: tessera upstream show NAME\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char *e = client_escape(argv[1]);
	char path[256];
	snprintf(path, sizeof(path), "/admin/v1/upstreams/%s", e ? e : "");
	free(e);
	json_t *reply;
	if ((r = cli_call(c, "upstream show", "GET", path, NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
	} else {
		char models[1024];
		models_text(reply, models, sizeof(models));
		printf("upstream:        %s%s\n", s_or(reply, "name", "?"),
		       json_is_true(json_object_get(reply, "removed")) ? " (removed from config)" : "");
		printf("kind:            %s\n", s_or(reply, "kind", "?"));
		printf("base url:        %s\n", s_or(reply, "base_url", "?"));
		printf("region:          %s\n", s_or(reply, "region", "-"));
		printf("baa:             %s\n", json_is_true(json_object_get(reply, "baa")) ? "yes" : "no");
		printf("on prem:         %s\n", json_is_true(json_object_get(reply, "on_prem")) ? "yes" : "no");
		printf("models:          %s\n", models);
		printf("rotation period: %s (grace %s)\n", s_or(reply, "rotation_period", "?"),
		       s_or(reply, "grace_period", "?"));
		json_t *k = json_object_get(reply, "active_key");
		if (json_is_object(k))
			printf("active key:      version %lld, fingerprint %s, since %s (%s)\n",
			       (long long)json_integer_value(json_object_get(k, "version")), s_or(k, "fingerprint", "?"),
			       s_or(k, "activated_at", "?"), s_or(k, "origin", "?"));
		else
			printf("active key:      none\n");
		printf("key versions:    %lld\n", (long long)json_integer_value(json_object_get(reply, "key_versions")));
		printf("first used:      %s\n", s_or(reply, "first_used_at", "never"));
		printf("last used:       %s\n", s_or(reply, "last_used_at", "never"));
	}
	json_decref(reply);
	return 0;
}

static const struct command cmds[] = {
	{ "upstream list", "tessera upstream list", "list the LLM upstreams and their active keys", cmd_upstream_list },
	{ "upstream show", "tessera upstream show NAME", "show one LLM upstream", cmd_upstream_show },
};
COMMAND_GROUP(upstream_commands, cmds);
