# One-time bootstrap of an environment's project, applied once by a person with project-owner rights
# (local state; keep it safe or import it later): the Terraform state bucket, the deployer service account that
# GitHub Actions impersonates, and the Workload Identity Federation pool that lets exactly this repository's
# workflow (on main, in the GitHub environment of the same name) act as it. No service account key is ever made.
#   terraform -chdir=infra/bootstrap init && terraform -chdir=infra/bootstrap apply -var environment=staging \
#     -var github_owner=OWNER -var github_repo=REPO
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
  }
}

variable "environment" {
  type = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "github_owner" {
  description = "The GitHub owner (user or organisation) of the repository whose workflow may deploy."
  type        = string
}

variable "github_repo" {
  description = "The repository's name (without the owner)."
  type        = string
}

locals {
  env = yamldecode(file("${path.module}/../../environments/${var.environment}.yaml"))
  # What the deployer needs to apply infra/ (no primitive role): each admin role is limited to its service.
  deployer_roles = [
    "roles/artifactregistry.admin",
    "roles/bigquery.admin",
    "roles/cloudscheduler.admin",
    "roles/iam.roleAdmin",
    "roles/logging.configWriter",
    "roles/monitoring.editor",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
  ]
}

provider "google" {
  project = local.env.project
  region  = local.env.region
}

resource "google_project_service" "apis" {
  for_each           = toset(["iam.googleapis.com", "iamcredentials.googleapis.com", "sts.googleapis.com", "storage.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

# Terraform state of infra/ for this environment (versioned: state history is what versioning is for).
resource "google_storage_bucket" "tfstate" {
  #checkov:skip=CKV_GCP_62:The state bucket's reads and writes are in the data-access audit logs; a usage-log bucket for it adds nothing.
  name                        = "${local.env.project}-tfstate"
  location                    = local.env.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 20
    }
    action {
      type = "Delete"
    }
  }
}

# Service accounts: create and manage the runtime accounts and their IAM policy, but never make keys
# (roles/iam.serviceAccountAdmin minus nothing it needs; no iam.serviceAccountKeys.*). actAs on each runtime
# account is granted per account in infra/iam.tf, not on the project.
resource "google_project_iam_custom_role" "deployer_service_accounts" {
  role_id     = "strategyEngineDeployerServiceAccounts"
  title       = "Strategy Engine deployer: service accounts"
  description = "Create and manage service accounts and their IAM policy; no keys, no project-wide actAs."
  permissions = [
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.list",
    "iam.serviceAccounts.setIamPolicy",
    "iam.serviceAccounts.update",
  ]
}

resource "google_project_iam_member" "deployer_service_accounts" {
  project = local.env.project
  role    = google_project_iam_custom_role.deployer_service_accounts.name
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_service_account" "deployer" {
  account_id   = "strategy-engine-deployer" # infra/locals.tf deployer
  display_name = "Strategy Engine deployer (GitHub Actions via Workload Identity Federation)"
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_roles)
  project  = local.env.project
  role     = each.value
  member   = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
}

resource "google_iam_workload_identity_pool_provider" "github" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"        = "assertion.sub"
    "attribute.repository"  = "assertion.repository"
    "attribute.ref"         = "assertion.ref"
    "attribute.environment" = "assertion.environment"
  }
  # Only this repository's workflow, on main, in the GitHub environment named like this one (a job with
  # `environment:` gets the subject repo:OWNER/REPO:environment:NAME).
  attribute_condition = "assertion.sub == 'repo:${var.github_owner}/${var.github_repo}:environment:${var.environment}' && assertion.ref == 'refs/heads/main'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deployer_wif" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_owner}/${var.github_repo}"
}

output "workload_identity_provider" {
  value = google_iam_workload_identity_pool_provider.github.name # the workflow's WIF_PROVIDER variable
}
output "deployer" {
  value = google_service_account.deployer.email
}
output "state_bucket" {
  value = google_storage_bucket.tfstate.name
}
