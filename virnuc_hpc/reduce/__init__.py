"""`reduce`: every shard verified, then merged into RUN/results/ (merge), in VirNucPro's
formats (outputs) and the typed rows of the results (schema), with MultiQC's files (mqc) and
score histograms (scores). Nothing is published unless every sample adds up."""
