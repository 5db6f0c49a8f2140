import Foundation

/// The small LLaDA model and Learn2PD filter shipped inside the package: every command's
/// default. Trained by `scripts/train_tiny_model.py` on the task suite; the filter by
/// `l2pd filter collect` + `l2pd filter train` on that model.
public enum DefaultModel {
    /// Directory in the Hugging Face LLaDA layout (config.json, model.safetensors, tokenizer.json).
    public static var directory: URL? { resource("Model") }

    /// The Learn2PD filter trained on the default model, or nil when the package ships none.
    public static var filter: URL? { resource("Filter/filter.safetensors") }

    private static func resource(_ relative: String) -> URL? {
        guard let base = Bundle.module.resourceURL else { return nil }
        let url = base.appendingPathComponent(relative)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}
