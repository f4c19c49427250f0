#!/usr/bin/env bash
# Deploy one environment: Terraform (infra/) applies everything - bucket, dataset and tables, registry, secrets,
# service accounts and IAM, the Cloud Run Job and Service, one Cloud Scheduler entry per stage
# (deploy/scheduler-stages.yaml), monitoring - for environments/ENVIRONMENT.yaml, running IMAGE.
# Usage: deploy/deploy.sh ENVIRONMENT [IMAGE@sha256:DIGEST]
#   without IMAGE: builds the image with Cloud Build (commit as GIT_COMMIT), pushes it and deploys its digest.
# Needs gcloud and terraform, authenticated as the deployer (infra/bootstrap); CI runs it from
# .github/workflows/ci-cd.yml with Workload Identity Federation. The state lives in gs://PROJECT-tfstate.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVIRONMENT=${1:?usage: deploy/deploy.sh staging|production [IMAGE@sha256:DIGEST]}
IMAGE=${2:-}
ENV_FILE="environments/$ENVIRONMENT.yaml"
[ -f "$ENV_FILE" ] || { echo "deploy: no $ENV_FILE" >&2; exit 2; }
PY=${PYTHON:-python3}
read -r PROJECT REGION < <("$PY" -c 'import sys, yaml; e = yaml.safe_load(open(sys.argv[1])); print(e["project"], e["region"])' "$ENV_FILE")
[ -n "${PROJECT:-}" ] && [ -n "${REGION:-}" ] || { echo "deploy: cannot read project and region from $ENV_FILE" >&2; exit 2; }

if [ -z "$IMAGE" ]; then
  COMMIT=$(git rev-parse HEAD)
  REF="$REGION-docker.pkg.dev/$PROJECT/strategy-engine/strategy-engine:$COMMIT"
  CONFIG=$(mktemp --suffix .yaml); trap 'rm -f "$CONFIG"' EXIT
  cat > "$CONFIG" <<YAML
steps:
  - name: gcr.io/cloud-builders/docker
    args: [build, --build-arg, GIT_COMMIT=$COMMIT, -t, $REF, .]
images: [$REF]
YAML
  gcloud builds submit --project "$PROJECT" --region "$REGION" --config "$CONFIG" .
  IMAGE="$REGION-docker.pkg.dev/$PROJECT/strategy-engine/strategy-engine@$(gcloud artifacts docker images describe "$REF" \
          --project "$PROJECT" --format 'value(image_summary.digest)')"
fi
case "$IMAGE" in
  *@sha256:*) ;;
  *) echo "deploy: IMAGE must be pinned by digest (...@sha256:...), got '$IMAGE'" >&2; exit 2 ;;
esac

terraform -chdir=infra init -input=false -reconfigure \
  -backend-config="bucket=$PROJECT-tfstate" -backend-config="prefix=strategy-engine/$ENVIRONMENT"
terraform -chdir=infra apply -input=false -auto-approve -var "environment=$ENVIRONMENT" -var "image=$IMAGE"
echo "deployed $IMAGE to $ENVIRONMENT ($PROJECT, $REGION)"
