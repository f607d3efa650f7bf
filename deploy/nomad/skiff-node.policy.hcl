# Lets the tasks of job skiff-node read the node credentials under nomad/jobs/skiff-node/.
#
#   nomad acl policy apply -namespace default -job skiff-node skiff-node-vars skiff-node.policy.hcl
#
# Nomad grants a policy to a job, not to one allocation of it: every node's agent can read every
# node's Variable (README.md, "Node credentials and their limits").
namespace "default" {
  variables {
    path "nomad/jobs/skiff-node/*" {
      capabilities = ["read"]
    }
  }
}
