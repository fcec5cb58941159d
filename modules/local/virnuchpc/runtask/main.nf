process VIRNUCHPC_RUNTASK {
    tag "${meta.id}:${shard.name}"
    label 'process_high'
    label 'process_gpu'

    // No public image yet: `make container` builds virnuc:<version> (podman/docker), `make sif`
    // virnuc.sif; both read the model cache at /models (bind it: docs/containers.md).
    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'virnuc.sif' :
        'virnuc:0.1.0' }"

    input:
    // One shard's inputs, a folder written by `virnuc-hpc export-shards` (VIRNUCHPC_PLAN's
    // shards) and named by the shard's index (00000, 00001, ...): the task reads only it and
    // the model cache.
    tuple val(meta), path(shard)

    output:
    tuple val(meta), path("task-${shard.name}", type: 'dir'), emit: task
    tuple val("${task.process}"), val('virnuc-hpc'), eval('virnuc-hpc --version | sed -n "s/^ *virnuc-hpc: *//p"'), topic: versions, emit: versions_virnuchpc
    tuple val("${task.process}"), val('torch'), eval('virnuc-hpc --version | sed -n "s/^ *torch: *//p"'), topic: versions, emit: versions_torch

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def index = shard.name.toInteger()
    // label process_gpu: the pipeline's gpu profile sets ext.use_gpu (and accelerator 1)
    def device = task.ext.use_gpu ? 'cuda' : 'auto'
    """
    virnuc-hpc run-task ${shard} \\
        --index ${index} \\
        --out task-${shard.name} \\
        --device ${device} \\
        ${args}
    """

    stub:
    """
    mkdir -p task-${shard.name}
    touch task-${shard.name}/DONE task-${shard.name}/accounting.tsv
    """
}
