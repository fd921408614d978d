"""Training, evaluation data and export of our age and gender network (extra ``train``)."""
