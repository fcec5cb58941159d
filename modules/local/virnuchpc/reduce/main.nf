process VIRNUCHPC_REDUCE {
    tag "$meta.id"
    label 'process_medium'

    // No public image yet: `make container` builds virnuc:<version> (podman/docker), `make sif`
    // virnuc.sif; both read the model cache at /models (bind it: docs/containers.md).
    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'virnuc.sif' :
        'virnuc:0.1.0' }"

    input:
    // The run dir VIRNUCHPC_PLAN wrote (staged as `plan`, only read: it is copied to ${prefix})
    // and every task folder of its shards (VIRNUCHPC_RUNTASK's task-NNNNN), collected.
    tuple val(meta), path(run, stageAs: 'plan')
    path(tasks)

    output:
    tuple val(meta), path("${prefix}/results/*", type: 'dir'), emit: results
    tuple val(meta), path("${prefix}/results/samples.tsv")    , emit: samples
    tuple val(meta), path("${prefix}/results/summary.json")   , emit: summary
    tuple val(meta), path("${prefix}/results/virnuc_hpc_*")   , emit: multiqc
    tuple val(meta), path("${prefix}/results/report.html")    , emit: report, optional: true
    tuple val("${task.process}"), val('virnuc-hpc'), eval('virnuc-hpc --version | sed -n "s/^ *virnuc-hpc: *//p"'), topic: versions, emit: versions_virnuchpc

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    cp -RL ${run} ${prefix}

    virnuc-hpc reduce ${prefix} \\
        --tasks ${tasks} \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix}/results
    python3 -c 'import json, sys; print("\\n".join(s["name"] for s in json.load(open(sys.argv[1]))["samples"]))' \\
        ${run}/plan.json | while read -r sample; do
        mkdir -p "${prefix}/results/\$sample"
        touch "${prefix}/results/\$sample/prediction_results.txt" \\
            "${prefix}/results/\$sample/prediction_results_highestscore.csv" \\
            "${prefix}/results/\$sample/predictions.tsv"
    done
    touch ${prefix}/results/samples.tsv ${prefix}/results/summary.json \\
        ${prefix}/results/virnuc_hpc_general_stats_mqc.json
    """
}
