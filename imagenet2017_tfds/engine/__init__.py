"""The one engine: read each archive once into buckets (stream), plan, then build, check,
serialize and write the shards on every core (jobs, pool, shards), resumably (work)."""
