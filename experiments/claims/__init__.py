"""The claims of the classic recurrent literature, measured by seqcli over seeds."""
