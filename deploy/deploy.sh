#!/usr/bin/env bash
# Build the image and deploy the daily Cloud Run Job and its Cloud Scheduler trigger.
# Usage: deploy/deploy.sh PROJECT_ID [REGION]      (needs gcloud, authenticated; nothing here runs it in CI)
set -euo pipefail
PROJECT_ID=${1:?usage: deploy/deploy.sh PROJECT_ID [REGION]}
REGION=${2:-asia-south1}
IMAGE="${REGION}-docker.pkg.dev/${PROJECT_ID}/strategy-engine/strategy-engine:$(git rev-parse --short HEAD)"
cd "$(dirname "$0")/.."

render() { sed -e "s|PROJECT_ID|${PROJECT_ID}|g" -e "s|REGION|${REGION}|g" -e "s|IMAGE|${IMAGE}|g" "$1"; }

gcloud builds submit --project "$PROJECT_ID" --tag "$IMAGE" .
render deploy/cloudrun-job.yaml > /tmp/strategy-engine-job.yaml
gcloud run jobs replace /tmp/strategy-engine-job.yaml --project "$PROJECT_ID" --region "$REGION"

# One Cloud Scheduler entry per stage of the day (deploy/scheduler-stages.yaml), each a jobs:run call with its
# own container args; the YAML is read with the project's Python (PyYAML is a runtime requirement).
PY=${PYTHON:-.venv/bin/python}
render deploy/scheduler-stages.yaml > /tmp/strategy-engine-stages.yaml
"$PY" - /tmp/strategy-engine-stages.yaml <<'PYEOF' > /tmp/strategy-engine-stages.tsv
import json, sys, yaml
for job in yaml.safe_load(open(sys.argv[1]))["jobs"]:
    t = job["httpTarget"]
    print("\t".join([job["name"], job["schedule"], job["timeZone"], t["uri"], t["oauthToken"]["serviceAccountEmail"],
                     json.dumps(t["body"])]))
PYEOF
while IFS=$'\t' read -r name schedule tz uri sa body; do
  verb=create; gcloud scheduler jobs describe "$name" --project "$PROJECT_ID" --location "$REGION" >/dev/null 2>&1 && verb=update
  gcloud scheduler jobs "$verb" http "$name" --project "$PROJECT_ID" --location "$REGION" --schedule "$schedule" \
    --time-zone "$tz" --http-method POST --uri "$uri" --oauth-service-account-email "$sa" \
    --headers Content-Type=application/json --message-body "$body"
done < /tmp/strategy-engine-stages.tsv
echo "deployed $IMAGE"
