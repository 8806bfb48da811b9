"""Reports: metrics, figures and the HTML report of a run."""
