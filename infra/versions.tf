# Strategy Engine infrastructure: everything the system needs in an empty GCP project, for one environment.
#   terraform -chdir=infra init -backend-config="bucket=<state bucket>" -backend-config="prefix=<environment>"
#   terraform -chdir=infra apply -var environment=staging -var image=<registry>/strategy-engine@sha256:...
# deploy/deploy.sh runs exactly these; the settings come from environments/<environment>.yaml.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
  }
  # State in a GCS bucket made by infra/bootstrap (versioned, one prefix per environment).
  backend "gcs" {}
}

provider "google" {
  project = local.env.project
  region  = local.env.region
  default_labels = {
    app         = "strategy-engine"
    environment = local.env.environment
  }
}
