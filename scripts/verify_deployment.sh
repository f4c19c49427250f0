#!/usr/bin/env bash
# Check a deployed environment, with gcloud and curl (the smoke test after each deploy; run it by hand any time):
#   1. the API service answers GET /health 200, its warehouse check passes, and its archive check matches the
#      environment (create permission only when service.execute);
#   2. the last finished execution of the daily job succeeded, within --max-age-hours (default 26);
#   3. the archive bucket's retention is >= the environment's retention_years (and >= 5 years), locked exactly
#      when archive.lock_retention says so, versioning off, public access prevented;
#   4. the job runs as its own service account (strategy-engine@PROJECT), never the default compute account,
#      and, with --image, runs exactly that image.
# Usage: scripts/verify_deployment.sh ENVIRONMENT [--max-age-hours N] [--image REF]
# Settings from environments/ENVIRONMENT.yaml. ID_TOKEN (for the service) defaults to
# `gcloud auth print-identity-token --audiences=URL`; VERIFY_NOW (epoch seconds) overrides the clock (tests).
# Exit 0 when every check passes; 1 with one "FAIL:" line per failed check; 2 on a usage error.
set -uo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: scripts/verify_deployment.sh ENVIRONMENT [--max-age-hours N] [--image REF]" >&2; exit 2; }
ENVIRONMENT=${1:-}; [ -n "$ENVIRONMENT" ] || usage; shift
MAX_AGE_HOURS=26; IMAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --max-age-hours) MAX_AGE_HOURS=${2:?}; shift 2 ;;
    --image) IMAGE=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
ENV_FILE="environments/$ENVIRONMENT.yaml"
[ -f "$ENV_FILE" ] || { echo "verify: no $ENV_FILE (environments: $(ls environments | sed 's/\.yaml//' | tr '\n' ' '))" >&2; exit 2; }
PY=${PYTHON:-python3}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# The environment's settings, as shell variables.
eval "$("$PY" - "$ENV_FILE" <<'PYEOF'
import shlex, sys, yaml
e = yaml.safe_load(open(sys.argv[1]))
for k, v in {"PROJECT": e["project"], "REGION": e["region"], "RETENTION_YEARS": e["archive"]["retention_years"],
             "LOCK": str(bool(e["archive"]["lock_retention"])).lower(),
             "EXECUTE": str(bool(e["service"]["execute"])).lower()}.items():
    print(f"{k}={shlex.quote(str(v))}")
PYEOF
)" || { echo "verify: cannot read $ENV_FILE" >&2; exit 2; }
BUCKET="$PROJECT-strategy-runs"; JOB=strategy-engine-daily; API=strategy-engine-api
JOB_SA="strategy-engine@$PROJECT.iam.gserviceaccount.com"
FAILED=()
ok() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; FAILED+=("${1%%:*}"); }
G=(--project "$PROJECT" --format json)

# A python check over a JSON file: prints "ok <detail>" or "fail <detail>".
check() {
  local out
  if out=$("$PY" -c "$1" "${@:2}" 2> "$TMP/py.err"); then echo "$out"
  else echo "fail gcloud's answer could not be read ($(tail -1 "$TMP/py.err"))"; fi
}
report() { # NAME RESULT
  local name=$1 res=$2
  case "$res" in ok\ *) ok "$name: ${res#ok }" ;; fail\ *) fail "$name: ${res#fail }" ;; *) fail "$name: $res" ;; esac
}

# 1. the service
if gcloud run services describe "$API" --region "$REGION" "${G[@]}" > "$TMP/service.json" 2> "$TMP/err"; then
  URL=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("uri") or d.get("status", {}).get("url") or "")' "$TMP/service.json")
  if [ -z "$URL" ]; then fail "service: $API has no URL (not ready?)"
  else
    TOKEN=${ID_TOKEN:-$(gcloud auth print-identity-token --audiences="$URL" 2>/dev/null || gcloud auth print-identity-token 2>/dev/null)}
    code=$(curl -sS --max-time 60 -o "$TMP/health.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/health" 2> "$TMP/err")
    if [ "$code" != 200 ]; then fail "service: GET $URL/health answered ${code:-nothing} ($(head -c 300 "$TMP/err" "$TMP/health.json" 2>/dev/null | tr '\n' ' '))"
    else report service "$(check '
import json, sys
h, execute = json.load(open(sys.argv[1])), sys.argv[2] == "true"
c = h.get("checks", {})
wh, ar = c.get("warehouse", {}), c.get("archive", {})
if not wh.get("ok"): print("fail /health: warehouse check failed:", wh.get("error") or wh); sys.exit()
if bool(ar.get("ok")) != execute:
    print("fail /health: archive create permission is", "missing" if execute else "granted",
          "but service.execute is", str(execute).lower(), "-", ar.get("detail") or ar.get("error")); sys.exit()
print("ok /health 200, status", h.get("status"), "- warehouse ok, archive", ar.get("detail"), "- version", h.get("version"))
' "$TMP/health.json" "$EXECUTE")"
    fi
  fi
else fail "service: cannot describe $API in $PROJECT/$REGION: $(head -c 300 "$TMP/err")"; fi

# 2. the last run
if gcloud run jobs executions list --job "$JOB" --region "$REGION" --limit 20 "${G[@]}" > "$TMP/executions.json" 2> "$TMP/err"; then
  report "last run" "$(check '
import json, sys, time
from datetime import datetime
runs, max_age, now = json.load(open(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3])
def cond(e, kind):
    return next((c for c in e.get("status", {}).get("conditions", []) if c.get("type") == kind), {})
def when(e):
    t = e.get("status", {}).get("completionTime") or e.get("metadata", {}).get("creationTimestamp")
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() if t else 0.0
done = sorted((e for e in runs if cond(e, "Completed").get("status") in ("True", "False")), key=when)
if not done: print("fail no finished execution of the job"); sys.exit()
last = done[-1]
name, age = last.get("metadata", {}).get("name", "?"), (now - when(last)) / 3600
done_cond = cond(last, "Completed")
if done_cond.get("status") != "True":
    print(f"fail the last execution {name} failed:", done_cond.get("message", "")); sys.exit()
if age > max_age: print(f"fail the last execution {name} finished {age:.1f} h ago (more than {max_age:g} h)"); sys.exit()
print(f"ok {name} succeeded {age:.1f} h ago")
' "$TMP/executions.json" "$MAX_AGE_HOURS" "${VERIFY_NOW:-$(date -u +%s)}")"
else fail "last run: cannot list executions of $JOB: $(head -c 300 "$TMP/err")"; fi

# 3. the archive bucket
if gcloud storage buckets describe "gs://$BUCKET" "${G[@]}" > "$TMP/bucket.json" 2> "$TMP/err"; then
  report "archive bucket" "$(check '
import json, sys
b, years, lock = json.load(open(sys.argv[1])), float(sys.argv[2]), sys.argv[3] == "true"
rp = b.get("retention_policy") or b.get("retentionPolicy") or {}
period = int(rp.get("retentionPeriod") or rp.get("retention_period") or 0)
locked = bool(rp.get("isLocked") or rp.get("is_locked"))
need = max(years, 5) * 31557600
problems = []
if period < need: problems.append(f"retention {period / 31557600:.2f} y < {max(years, 5):g} y")
if locked != lock: problems.append("retention policy is " + ("locked" if locked else "NOT locked") + " but lock_retention is " + str(lock).lower())
if b.get("versioning_enabled") or (b.get("versioning") or {}).get("enabled"): problems.append("versioning is on")
pap = b.get("public_access_prevention") or (b.get("iamConfiguration") or {}).get("publicAccessPrevention")
if pap != "enforced": problems.append(f"public access prevention is {pap}")
print("fail " + "; ".join(problems) if problems else f"ok retention {period / 31557600:.2f} y, locked={str(locked).lower()}, versioning off, public access prevented")
' "$TMP/bucket.json" "$RETENTION_YEARS" "$LOCK")"
else fail "archive bucket: cannot describe gs://$BUCKET: $(head -c 300 "$TMP/err")"; fi

# 4. the job's identity (and image)
if gcloud run jobs describe "$JOB" --region "$REGION" "${G[@]}" > "$TMP/job.json" 2> "$TMP/err"; then
  report "job identity" "$(check '
import json, sys
j, want, image = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
spec = j.get("spec", {}).get("template", {}).get("spec", {}).get("template", {}).get("spec", {})
tmpl = j.get("template", {}).get("template", {})                   # the v2 resource shape
sa = spec.get("serviceAccountName") or tmpl.get("serviceAccount") or ""
ran = [c.get("image") for c in spec.get("containers") or tmpl.get("containers") or []]
if sa != want: print("fail the job runs as", sa or "the default compute service account", "- expected", want); sys.exit()
if image and ran != [image]: print(f"fail the job runs {ran}, expected {image}"); sys.exit()
print(f"ok runs as {sa}" + (f", image {image}" if image else ""))
' "$TMP/job.json" "$JOB_SA" "$IMAGE")"
else fail "job identity: cannot describe $JOB: $(head -c 300 "$TMP/err")"; fi

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "verify $ENVIRONMENT ($PROJECT): ${#FAILED[@]} check(s) failed: $(IFS=,; echo "${FAILED[*]}")" >&2
  exit 1
fi
echo "verify $ENVIRONMENT ($PROJECT): all checks passed"
