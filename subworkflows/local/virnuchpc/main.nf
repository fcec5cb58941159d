//
// VirNucPro at cluster scale, one Nextflow task per shard: plan the study into balanced
// shards, run each shard where only its folder and the model cache are (a GPU task), then
// verify and merge every shard into each sample's results.
//

include { VIRNUCHPC_PLAN    } from '../../../modules/local/virnuchpc/plan/main'
include { VIRNUCHPC_RUNTASK } from '../../../modules/local/virnuchpc/runtask/main'
include { VIRNUCHPC_REDUCE  } from '../../../modules/local/virnuchpc/reduce/main'

workflow VIRNUCHPC {

    take:
    ch_samplesheet // channel: [ val(meta), path(samplesheet), path(fasta) ]

    main:
    VIRNUCHPC_PLAN ( ch_samplesheet )

    // One item per shard; the shard's index, the study's shard count and the time and memory
    // shards.tsv asks for go into meta (a pipeline's config may size the task with them).
    ch_shards = VIRNUCHPC_PLAN.out.shards
        .join( VIRNUCHPC_PLAN.out.table )
        .flatMap { meta, shards, table ->
            def rows = table.splitCsv( header: true, sep: '\t' ).collectEntries { row -> [ (row.inputs): row ] }
            [ shards ].flatten().collect { shard ->
                def row = rows[ shard.name ]
                [ meta + [ shard: shard.name.toInteger(), shards: rows.size(), runtime_min: row.runtime_min.toInteger(), mem_mb: row.mem_mb.toInteger() ], shard ]
            }
        }

    VIRNUCHPC_RUNTASK ( ch_shards )

    // Each study's task folders, gathered as soon as all of its shards are done
    ch_tasks = VIRNUCHPC_RUNTASK.out.task
        .map { meta, task -> [ groupKey( meta.subMap( meta.keySet() - [ 'shard', 'shards', 'runtime_min', 'mem_mb' ] ), meta.shards ), task ] }
        .groupTuple()
        .map { key, tasks -> [ key.getGroupTarget(), tasks ] }

    ch_reduce = VIRNUCHPC_PLAN.out.run
        .join( ch_tasks )
        .multiMap { meta, run, tasks ->
            run:   [ meta, run ]
            tasks: tasks
        }

    VIRNUCHPC_REDUCE ( ch_reduce.run, ch_reduce.tasks )

    emit:
    results  = VIRNUCHPC_REDUCE.out.results  // channel: [ val(meta), [ path(sample_dir) ] ]
    samples  = VIRNUCHPC_REDUCE.out.samples  // channel: [ val(meta), path(samples.tsv) ]
    summary  = VIRNUCHPC_REDUCE.out.summary  // channel: [ val(meta), path(summary.json) ]
    multiqc  = VIRNUCHPC_REDUCE.out.multiqc  // channel: [ val(meta), [ path(virnuc_hpc_*) ] ]
    report   = VIRNUCHPC_REDUCE.out.report   // channel: [ val(meta), path(report.html) ] (optional)
    run      = VIRNUCHPC_PLAN.out.run        // channel: [ val(meta), path(run_dir) ]
    // versions: every module sends its versions to the `versions` topic channel
}
