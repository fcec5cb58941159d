"""One array task (`run-task`): its shard's frames through both encoders and the classifier
(frames), prepared ahead and published behind (prefetch), counted (progress), written as
verified parts (parts/); idempotent and resumable (run)."""
