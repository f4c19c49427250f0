# The warehouse: one dataset, the tables of strategy_engine.warehouse.TABLES (infra/tables.json, generated),
# partitioned by month on their date column and clustered as the code creates them (bigquery_table()).
resource "google_bigquery_dataset" "warehouse" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption. A customer-managed key would add a key whose loss or rotation mistake makes 6 years of records unreadable; no regulation here asks for CMEK.
  dataset_id                 = local.dataset_id
  location                   = local.env.warehouse.location
  description                = "Strategy Engine warehouse: signals, performance, runs, bars (rebuildable from the archive)"
  delete_contents_on_destroy = false
  depends_on                 = [google_project_service.apis]
}

resource "google_bigquery_table" "tables" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption, as for the dataset (CKV_GCP_81).
  for_each            = local.tables
  dataset_id          = google_bigquery_dataset.warehouse.dataset_id
  table_id            = each.key
  deletion_protection = local.env.warehouse.deletion_protection
  schema              = jsonencode(each.value.schema)
  clustering          = length(each.value.cluster) > 0 ? each.value.cluster : null

  dynamic "time_partitioning" {
    for_each = each.value.partition == null ? [] : [each.value.partition]
    content {
      type  = each.value.partition_type
      field = time_partitioning.value
    }
  }
}
