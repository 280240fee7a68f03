"""Runs beyond one machine: archives sharded over a Ray cluster (``--ray ADDRESS``).

A shard is a pipeline run over a file, or over a keyframe-aligned time range of a long one; the
cluster adds scheduling (Ray actors that hold the engines), retries, a resumable manifest and the
merge of the shards' results. Ray is optional (the ``ray`` extra) and imported only here.
"""
