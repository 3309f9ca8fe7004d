package sending

// SetRecorded makes f stand for what befalls the answer to each chunk's
// statement, given the statement's error: a connection lost after the
// statement was made, say.
func SetRecorded(s *Service, f func(error) error) { s.recorded = f }
