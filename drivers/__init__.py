"""Everything that speaks to hardware: the Stratum pool and the units' management APIs."""
