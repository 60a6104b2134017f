"""Model monitoring: drift of features and scores against the champion's training reference,
alert rate, and label-based quality once labels have arrived."""
