// PLACEHOLDER: the real declarations come from the `web` branch.
export declare const placeholder: boolean;
