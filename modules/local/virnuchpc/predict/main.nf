process VIRNUCHPC_PREDICT {
    tag "$meta.id"
    label 'process_high'

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
    tuple val(meta), path("${prefix}/results/*", type: 'dir'), emit: results
    tuple val(meta), path("${prefix}/results/samples.tsv")    , emit: samples
    tuple val(meta), path("${prefix}/results/summary.json")   , emit: summary
    tuple val(meta), path("${prefix}/results/virnuc_hpc_*")   , emit: multiqc
    tuple val(meta), path("${prefix}/results/report.html")    , emit: report, optional: true
    tuple val("${task.process}"), val('virnuc-hpc'), eval('virnuc-hpc --version | sed -n "s/^ *virnuc-hpc: *//p"'), topic: versions, emit: versions_virnuchpc
    tuple val("${task.process}"), val('torch'), eval('virnuc-hpc --version | sed -n "s/^ *torch: *//p"'), topic: versions, emit: versions_torch

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def parallel = task.accelerator ? task.accelerator.request : 1
    """
    virnuc-hpc predict \\
        --samplesheet ${samplesheet} \\
        -o ${prefix} \\
        --parallel ${parallel} \\
        --quiet \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix}/results
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if (\$i == "sample") c = i; next } { print \$c }' \\
        ${samplesheet} | while read -r sample; do
        mkdir -p "${prefix}/results/\$sample"
        touch "${prefix}/results/\$sample/prediction_results.txt" \\
            "${prefix}/results/\$sample/prediction_results_highestscore.csv" \\
            "${prefix}/results/\$sample/predictions.tsv"
    done
    touch ${prefix}/results/samples.tsv ${prefix}/results/summary.json \\
        ${prefix}/results/virnuc_hpc_general_stats_mqc.json
    """
}
