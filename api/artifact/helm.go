package artifact

// The layout of a HelmRelease's artifact: the chart's files below HelmChartDir (as
// in the chart's .tgz, but under a fixed folder name), and the merged values in
// HelmValuesFile. The spoke substitutes ${cluster_name} and the Cluster's variables
// in the values only, never in the chart's templates.
const (
	HelmChartDir   = "chart"
	HelmValuesFile = "values.yaml"
)
