#!/usr/bin/env bash
# docs_agree.sh — the documentation and the code agree (STYLE.md: "Docs and code
# agree, and a test proves it").
#
#   * every key of `tesserad --dump-config` ("section key type default
#     [secret] [reloadable]", default "-" for none) has an entry in its section
#     of docs/tessera.conf.5 (a .TP entry starting with \fBkey\fR or .B key,
#     naming the type as \fItype\fR, and \fBsecret\fR exactly when the key is
#     secret) and a `#key = ...` line in its section of etc/tessera.conf,
#     showing the default (on the key line or in the comment just above it);
#     [upstream.NAME] keys are looked up in the page's "[upstream.NAME]"
#     subsection and in any [upstream.*] section of the sample;
#   * every key the page or the sample documents is known to tesserad;
#   * etc/tessera.conf passes `tesserad --dev --check-config`;
#   * every command listed under "Commands:" in `tessera --help` has an entry
#     under COMMANDS in docs/tessera.1, and every entry there is in --help
#     (designed-but-unbuilt commands live under PLANNED instead);
#   * every route of `tesserad --list-routes` is named in docs/tesserad.8;
#   * every man page is plain ASCII and renders with `groff -man -Tutf8 -ww -z`
#     (with and without preconv) without a single warning.
#
# groff comes from the Debian package groff-base (scripts/install-deps).

# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/common.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"

src=$TESSERA_SRCDIR
conf5=$src/docs/tessera.conf.5
man1=$src/docs/tessera.1
man8=$src/docs/tesserad.8
sample=$src/etc/tessera.conf

# Named sections ([upstream.azure]) are documented once, as upstream.NAME.
norm_section() {
	case $1 in
	upstream.*) echo upstream.NAME ;;
	*) echo "$1" ;;
	esac
}

# "section<US>key<US>type<US>secret" (US: the \037 unit separator) for each key
# entry of tessera.conf(5): the line after .TP in a .SS "[section]" subsection
# of any .SH. type is the first \fI...\fR word of that line, secret is 1 when
# the line says \fBsecret\fR.
conf5_keys() {
	awk '
	/^\.SH/ { sec = ""; prev_tp = 0; next }
	/^\.SS/ {
		sec = ""
		if (match($0, /\[[^]]+\]/)) sec = substr($0, RSTART + 1, RLENGTH - 2)
		prev_tp = 0; next
	}
	prev_tp && sec != "" {
		key = ""
		if ($0 ~ /^\\fB/) { key = substr($0, 4); sub(/\\f[RPI].*/, "", key) }
		else if ($0 ~ /^\.B[IR]? /) { split($0, a, " "); key = a[2]; gsub(/"/, "", key) }
		gsub(/\\-/, "-", key)
		type = ""
		if (match($0, /\\fI[a-z]+\\f[RP]/)) type = substr($0, RSTART + 3, RLENGTH - 6)
		secret = (index($0, "\\fBsecret\\fR") > 0) ? 1 : 0
		if (key != "") print sec "\037" key "\037" type "\037" secret
	}
	{ prev_tp = ($0 ~ /^\.TP/) }
	' "$conf5"
}

# "section<US>key<US>value<US>comment block above" for each key line of the
# sample config ("#key = value" or "key = value"), sections commented or not.
sample_keys() {
	awk '
	/^#?[ \t]*\[[^]]+\][ \t]*$/ {
		s = $0; sub(/^#?[ \t]*\[/, "", s); sub(/\].*/, "", s); sec = s; comm = ""; next
	}
	/^#?[a-z_][a-z0-9_]*[ \t]*=/ {
		k = $0; sub(/^#/, "", k); v = k
		sub(/[ \t]*=.*/, "", k); sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
		print sec "\037" k "\037" v "\037" comm
		comm = ""; next
	}
	/^#/ { c = $0; sub(/^#[ \t]*/, "", c); comm = comm " " c; next }
	{ comm = "" }
	' "$sample"
}

for f in "$conf5" "$man1" "$man8" "$sample"; do
	[[ -f $f ]] || die "missing $f"
done
[[ -x $TESSERAD ]] || die "no tesserad at $TESSERAD (build first)"
[[ -x $TESSERA ]] || die "no tessera at $TESSERA (build first)"

# --- config keys --------------------------------------------------------------
declare -A in_conf5 conf5_type conf5_secret in_sample sample_value sample_comment known

while IFS=$'\037' read -r sec key type secret; do
	id="$(norm_section "$sec") $key"
	in_conf5[$id]=1
	conf5_type[$id]=$type
	conf5_secret[$id]=$secret
done < <(conf5_keys)

while IFS=$'\037' read -r sec key value comment; do
	id="$(norm_section "$sec") $key"
	in_sample[$id]=1
	sample_value[$id]=$value
	sample_comment[$id]=$comment
done < <(sample_keys)

dump=$("$TESSERAD" --dump-config 2>&1)
rc=$?
if ((rc != 0)) || [[ -z $dump ]]; then
	fail "tesserad --dump-config lists the config keys" "exit $rc, output: $dump"
else
	ok "tesserad --dump-config lists the config keys"
fi

while read -r sec key type default; do
	[[ -n $sec && -n $key ]] || continue
	# trailing flags after the default
	secret=0
	while [[ $default == *" secret" || $default == *" reloadable" ]]; do
		[[ $default == *" secret" ]] && secret=1
		default=${default% *}
	done
	nsec=$(norm_section "$sec")
	id="$nsec $key"
	known[$id]=1
	if [[ -z ${in_conf5[$id]:-} ]]; then
		fail "conf5 documents [$nsec] $key" "no .TP entry \\fB$key\\fR under .SS [$nsec] in docs/tessera.conf.5"
	elif [[ ${conf5_type[$id]} != "$type" ]]; then
		fail "conf5 documents [$nsec] $key" "tesserad says type '$type', docs/tessera.conf.5 says '${conf5_type[$id]}'"
	elif [[ ${conf5_secret[$id]} != "$secret" ]]; then
		fail "conf5 documents [$nsec] $key" \
			"secret marker: tesserad says $( ((secret)) && echo secret || echo 'not secret'), docs/tessera.conf.5 disagrees"
	else
		ok "conf5 documents [$nsec] $key"
	fi
	if [[ -z ${in_sample[$id]:-} ]]; then
		fail "sample config has [$nsec] $key" "no '#$key = ...' line in section [$nsec] of etc/tessera.conf"
		continue
	fi
	ok "sample config has [$nsec] $key"
	case $default in
	'' | - | '""' | "''" | none | '(none)' | empty | '(empty)') continue ;;
	esac
	if [[ ${sample_value[$id]} == "$default" || ${sample_comment[$id]} == *"$default"* ]]; then
		ok "sample config shows the default of [$nsec] $key"
	else
		fail "sample config shows the default of [$nsec] $key" \
			"tesserad says '$default', etc/tessera.conf shows '#$key = ${sample_value[$id]}'"
	fi
done <<<"$dump"

if ((${#known[@]} > 0)); then
	for id in $(printf '%s\n' "${!in_conf5[@]}" | tr ' ' '|' | sort); do
		id=${id/|/ }
		if [[ -n ${known[$id]:-} ]]; then
			ok "conf5 key [${id% *}] ${id#* } is known to tesserad"
		else
			fail "conf5 key [${id% *}] ${id#* } is known to tesserad" "not in tesserad --dump-config"
		fi
	done
	for id in $(printf '%s\n' "${!in_sample[@]}" | tr ' ' '|' | sort); do
		id=${id/|/ }
		if [[ -n ${known[$id]:-} ]]; then
			ok "sample config key [${id% *}] ${id#* } is known to tesserad"
		else
			fail "sample config key [${id% *}] ${id#* } is known to tesserad" "not in tesserad --dump-config"
		fi
	done
fi

work=$(mktemp_dir docs)
out=$(cd "$work" && "$TESSERAD" --dev -c "$sample" --check-config 2>&1)
rc=$?
if ((rc == 0)) && [[ $out == *": OK"* ]]; then
	ok "etc/tessera.conf passes tesserad --dev --check-config"
else
	fail "etc/tessera.conf passes tesserad --dev --check-config" "exit $rc, output: $out"
fi

# --- CLI commands ---------------------------------------------------------------
help=$("$TESSERA" --help 2>&1)
cli_cmds=$(printf '%s\n' "$help" | awk '
	/^Commands:/ { inb = 1; next }
	inb && /^  [^ ]/ { print $1; next }
	inb && /^[^ \t]/ { inb = 0 }
')
if [[ -z $cli_cmds ]]; then
	fail "tessera --help lists commands under Commands:" "output: $help"
else
	ok "tessera --help lists commands under Commands:"
fi

# Commands documented under .SH COMMANDS of tessera(1): the first word of the
# line after each .TP.
man_cmds=$(awk '
	/^\.SH/ { inb = ($0 ~ /^\.SH "?COMMANDS"?[ \t]*$/); prev_tp = 0; next }
	inb && prev_tp {
		line = $0
		if (line ~ /^\.B[IR]? /) { sub(/^\.B[IR]? +/, "", line); gsub(/"/, "", line) }
		else if (line ~ /^\\fB/) { line = substr(line, 4); sub(/\\f[RPI].*/, "", line) }
		else line = ""
		split(line, a, " "); gsub(/\\-/, "-", a[1])
		if (a[1] != "") print a[1]
	}
	{ prev_tp = ($0 ~ /^\.TP/) }
' "$man1")

for c in $cli_cmds; do
	if grep -qxF -- "$c" <<<"$man_cmds"; then
		ok "tessera(1) documents command $c"
	else
		fail "tessera(1) documents command $c" "no .TP entry for '$c' under COMMANDS in docs/tessera.1"
	fi
done
for c in $man_cmds; do
	if grep -qxF -- "$c" <<<"$cli_cmds"; then
		ok "tessera --help lists command $c of tessera(1)"
	else
		fail "tessera --help lists command $c of tessera(1)" \
			"docs/tessera.1 documents '$c' under COMMANDS but tessera --help does not list it (not built yet? move it to PLANNED)"
	fi
done

# --- HTTP routes ------------------------------------------------------------------
routes=$("$TESSERAD" --list-routes 2>&1)
rc=$?
if ((rc != 0)) || [[ -z $routes ]]; then
	fail "tesserad --list-routes lists routes" "exit $rc, output: $routes"
else
	ok "tesserad --list-routes lists routes"
	while read -r method path _role; do
		[[ -n $method && -n $path ]] || continue
		if grep -qF -- "$method $path" "$man8"; then
			ok "tesserad(8) documents route $method $path"
		else
			fail "tesserad(8) documents route $method $path" "'$method $path' not in docs/tesserad.8"
		fi
	done <<<"$routes"
fi

# --- man pages render cleanly -------------------------------------------------------
have_groff=1
command -v groff >/dev/null 2>&1 || have_groff=0
for page in "$man8" "$man1" "$conf5"; do
	name=docs/${page##*/}
	bad=$(LC_ALL=C grep -n '[^ -~]' "$page" | head -3)
	if [[ -n $bad ]]; then
		fail "$name is plain ASCII" "non-ASCII bytes (use roff escapes such as \\(em): $bad"
	else
		ok "$name is plain ASCII"
	fi
	if ((!have_groff)); then
		fail "$name renders without groff warnings" "groff not found: apt-get install groff-base (scripts/install-deps)"
		continue
	fi
	warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1; groff -k -man -Tutf8 -ww -z "$page" 2>&1)
	if [[ -z $warn ]]; then
		ok "$name renders without groff warnings"
	else
		fail "$name renders without groff warnings" "$warn"
	fi
done

tap_done
