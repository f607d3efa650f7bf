# Lets the tasks of job skiff-nats read their server's files. A job's workload identity can read
# only nomad/jobs/skiff-nats itself without a policy; each server's Variable is one level below.
#
#   nomad acl policy apply -namespace default -job skiff-nats skiff-nats-vars skiff-nats.policy.hcl
namespace "default" {
  variables {
    path "nomad/jobs/skiff-nats/*" {
      capabilities = ["read"]
    }
  }
}
