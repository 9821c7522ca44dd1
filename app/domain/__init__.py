"""Pure records and arithmetic: samples, kernel eras, cost model. Imports nothing of ours."""
