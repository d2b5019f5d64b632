//! Kubernetes pod and container identification from /proc/<pid>/cgroup.
