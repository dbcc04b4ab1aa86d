"""Event data: sources (synthetic now, larcv3 HDF5 later), downsampling, epoch
samplers and a prefetching loader that assembles `VoxelBatch`es.

Import the submodules directly (`benchmark.data.pipeline`, ...); nothing is
imported here so that `import benchmark.data` stays cheap.
"""
