"""Data parallelism: one `data` mesh axis over every device of every host.

State is replicated (`P()`), batches are sharded on "data" and assembled from each
host's local slice with `jax.make_array_from_process_local_data` (which also works
across hosts). Linen BatchNorm then averages over the global batch with no axis_name
(tests/test_train.py checks 4 devices against 1).
"""

import dataclasses

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class Placement:
  """The mesh and the two shardings every step uses."""

  mesh: jax.sharding.Mesh
  replicated: NamedSharding
  batch: NamedSharding

  def put_batch(self, host_batch):
    """Host-local numpy batch (dict) -> global device arrays sharded on 'data'."""
    return jax.tree_util.tree_map(
        lambda array: jax.make_array_from_process_local_data(self.batch, array), host_batch)


def create_placement(devices=None):
  """A one-axis 'data' mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  mesh = jax.make_mesh((len(devices),), ("data",), devices=devices)
  return Placement(mesh=mesh, replicated=NamedSharding(mesh, P()),
                   batch=NamedSharding(mesh, P("data")))
