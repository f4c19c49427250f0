variable "environment" {
  description = "Which environments/<environment>.yaml to deploy: staging or production."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "image" {
  description = "The image to run, by digest (REGION-docker.pkg.dev/PROJECT/strategy-engine/strategy-engine@sha256:...)."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest (…@sha256:<64 hex>), so every run manifest names exactly what ran."
  }
}
