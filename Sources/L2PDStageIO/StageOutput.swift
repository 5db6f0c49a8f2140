/// The output of a stage: hidden states for the next stage, or readouts from the last.
public enum StageOutput: Sendable {
    case hidden([Float])
    case readouts([Readout])
}
