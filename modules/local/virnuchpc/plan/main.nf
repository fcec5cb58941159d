process VIRNUCHPC_PLAN {
    tag "$meta.id"
    label 'process_single'

    // No public image yet: `make container` builds virnuc:<version> (podman/docker), `make sif`
    // virnuc.sif; both read the model cache at /models (bind it: docs/containers.md).
    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'virnuc.sif' :
        'virnuc:0.1.0' }"

    input:
    // A study: its sample sheet (sample,fasta[,...]; the fasta column names files, read from
    // the sheet's folder) and those files, staged beside it.
    tuple val(meta), path(samplesheet), path(fasta)

    output:
    tuple val(meta), path("${prefix}", type: 'dir')         , emit: run
    tuple val(meta), path("shards/[0-9]*", type: 'dir')     , emit: shards
    tuple val(meta), path("shards/shards.tsv")              , emit: table
    tuple val("${task.process}"), val('virnuc-hpc'), eval('virnuc-hpc --version | sed -n "s/^ *virnuc-hpc: *//p"'), topic: versions, emit: versions_virnuchpc

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    virnuc-hpc plan \\
        --samplesheet ${samplesheet} \\
        --run-dir ${prefix} \\
        ${args}

    virnuc-hpc export-shards ${prefix} --to shards
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix} shards/00000
    python3 -c 'import csv, json, sys; json.dump({"samples": [{"name": row["sample"]} for row in csv.DictReader(open(sys.argv[1]))]}, open(sys.argv[2], "w"))' \\
        ${samplesheet} ${prefix}/plan.json
    cp ${prefix}/plan.json shards/00000/plan.json
    printf 'shard\\tinputs\\tsequences\\tchunks\\tminutes_est\\truntime_min\\tmem_mb\\tgpus\\n0\\t00000\\t0\\t0\\t0\\t1\\t1000\\t1\\n' \\
        > shards/shards.tsv
    """
}
