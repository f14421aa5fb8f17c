#version 330 core
// Turns a rendered frame (an RGBA32F texture) into display colors.
//   mode 0 rgb:        image = (r, g, b, 1), shown as is
//   mode 1 depth:      image = (distance along the ray, valid, confidence, 1), turbo colormap from
//                      near (red) to far (blue); invalid pixels show a gray checkerboard
//   mode 2 normals:    image = (nx, ny, nz, valid) in [-1, 1] world space, shown as n * 0.5 + 0.5
//   mode 3 difference: |image - reference| averaged over rgb, times gain, through turbo
in vec2 uv;
out vec4 color;

uniform sampler2D image;
uniform sampler2D reference;
uniform int mode;
uniform float near;
uniform float far;
uniform float gain;

// Google's Turbo colormap, sampled at 17 evenly spaced points and interpolated linearly: within
// 0.03 of the full 256-entry table per channel, and exact at both ends.
const vec3 TURBO[17] = vec3[17](
    vec3(0.1900, 0.0718, 0.2322), vec3(0.2511, 0.2524, 0.6337), vec3(0.2763, 0.4212, 0.8912),
    vec3(0.2586, 0.5796, 0.9988), vec3(0.1584, 0.7355, 0.9231), vec3(0.0927, 0.8655, 0.7623),
    vec3(0.1966, 0.9490, 0.5947), vec3(0.4278, 0.9942, 0.3857), vec3(0.6436, 0.9900, 0.2336),
    vec3(0.8047, 0.9245, 0.2046), vec3(0.9330, 0.8124, 0.2267), vec3(0.9931, 0.6741, 0.2035),
    vec3(0.9836, 0.4929, 0.1285), vec3(0.9211, 0.3149, 0.0548), vec3(0.8161, 0.1846, 0.0181),
    vec3(0.6645, 0.0844, 0.0042), vec3(0.4796, 0.0158, 0.0106));

vec3 turbo(float x) {
    float position = clamp(x, 0.0, 1.0) * 16.0;
    int i = min(int(position), 15);
    return mix(TURBO[i], TURBO[i + 1], position - float(i));
}

// Pixels without a valid value: a checkerboard of 8-texel squares in texture space, so a window
// and an offscreen render of the same frame show the same pattern.
vec3 invalid_pattern() {
    ivec2 cell = ivec2(uv * vec2(textureSize(image, 0)) / 8.0);
    return ((cell.x + cell.y) & 1) == 0 ? vec3(0.35) : vec3(0.55);
}

void main() {
    vec4 texel = texture(image, uv);
    vec3 rgb;
    if (mode == 1) {
        float x = (texel.r - near) / max(far - near, 1e-6);
        rgb = texel.g > 0.5 ? turbo(1.0 - x) : invalid_pattern();
    } else if (mode == 2) {
        rgb = texel.a > 0.5 ? texel.rgb * 0.5 + 0.5 : invalid_pattern();
    } else if (mode == 3) {
        vec3 delta = abs(texel.rgb - texture(reference, uv).rgb);
        rgb = turbo(gain * (delta.r + delta.g + delta.b) / 3.0);
    } else {
        rgb = texel.rgb;
    }
    color = vec4(rgb, 1.0);
}
