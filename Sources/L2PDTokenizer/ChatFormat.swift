/// Prompt templates, written out in code since there is no Jinja engine here.
public enum ChatFormat {
    /// LLaDA-8B-Instruct's template for one user turn, ending where the assistant's answer begins.
    public static func llaDAInstruct(user: String) -> String {
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\n\(user)<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    }
}
