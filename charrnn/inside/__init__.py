"""Looking inside a language model: activations, text features, the cell finder, reports."""
