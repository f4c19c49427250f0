# The run archive: executed notebooks, manifests and the hash-chained ledger, write-once (RELIABILITY.md case 6).
# - retention: no object can be deleted or replaced before retention_years (>= 5; 6 in production);
# - locked in production (environments/production.yaml archive.lock_retention): the policy itself can never be
#   removed or shortened, not even by the project owner; staging stays unlocked;
# - versioning OFF: GCS does not allow object versioning together with a retention policy, and the archive never
#   overwrites (uploads carry ifGenerationMatch=0), so there is nothing for versions to keep;
# - second region: production is a configurable dual-region bucket (archive.data_locations), so every object is
#   stored in two regions under this one policy and lock (no replica bucket, no copy job that could fall behind).
resource "google_storage_bucket" "archive" {
  #checkov:skip=CKV_GCP_78:Object versioning cannot be combined with a retention policy; the archive is create-only (ifGenerationMatch=0) and retention-locked, which is stronger.
  name                        = local.bucket_name
  location                    = local.env.archive.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  retention_policy {
    retention_period = local.retention_seconds
    is_locked        = local.env.archive.lock_retention
  }

  dynamic "custom_placement_config" {
    for_each = length(local.env.archive.data_locations) > 0 ? [local.env.archive.data_locations] : []
    content {
      data_locations = custom_placement_config.value
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle {
    prevent_destroy = true
  }
  depends_on = [google_project_service.apis]
}

# Usage logs of the archive bucket (who read or wrote what). Data-access audit logs (iam.tf) cover the API calls;
# this bucket keeps the storage service's own access logs.
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the log sink of the archive's access logs; logging it into itself would loop.
  #checkov:skip=CKV_GCP_78:Access logs are written once by the storage service and expire by lifecycle; versions would only keep deleted logs.
  name                        = "${local.bucket_name}-access-logs"
  location                    = local.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = false
  }

  lifecycle_rule {
    condition {
      age = 400
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}

# The storage service writes usage logs as this group.
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}
