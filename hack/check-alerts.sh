#!/usr/bin/env bash
# Checks the Prometheus alert rules: syntax (promtool check rules), behaviour
# (promtool test rules on deploy/prometheus/alerts_test.yaml), and that every
# alert has summary, description and a runbook link to an existing section of
# docs/runbook.md. promtool comes from Debian's prometheus package.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/deploy/prometheus
runbook=$root/docs/runbook.md

if ! command -v promtool >/dev/null; then
	echo "check-alerts: promtool not found (apt-get install prometheus)" >&2
	exit 1
fi

promtool check rules "$dir/alerts.yaml"
(cd "$dir" && promtool test rules alerts_test.yaml)

# GitHub's anchor for a heading: lower case, spaces to dashes, other
# punctuation dropped. Runbook sections are headed by the alert name.
anchors=$(sed -n 's/^##\+ \(.*\)$/\1/p' "$runbook" |
	tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9 _-]//g; s/ /-/g')

fail=0
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$dir/alerts.yaml")
for a in $alerts; do
	# The rule's text runs from its "- alert:" line to the next one.
	rule=$(awk -v a="$a" '
		/^ *- alert:/ { on = ($3 == a) }
		on { print }' "$dir/alerts.yaml")
	for key in summary description runbook; do
		if ! grep -q "^ *$key:" <<<"$rule"; then
			echo "check-alerts: $a has no $key annotation" >&2
			fail=1
		fi
	done
	anchor=$(sed -n 's/^ *runbook: .*docs\/runbook\.md#\(.*\)$/\1/p' <<<"$rule")
	if [[ -z $anchor ]]; then
		echo "check-alerts: $a: runbook does not point into docs/runbook.md" >&2
		fail=1
	elif ! grep -qx -- "$anchor" <<<"$anchors"; then
		echo "check-alerts: $a: docs/runbook.md has no section #$anchor" >&2
		fail=1
	fi
	if ! grep -q "alertname: $a\b" "$dir/alerts_test.yaml"; then
		echo "check-alerts: $a has no test in alerts_test.yaml" >&2
		fail=1
	fi
done
if ((fail)); then
	exit 1
fi
echo "check-alerts: $(wc -w <<<"$alerts") alerts checked"
