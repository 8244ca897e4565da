// depthcloud browser viewer: subscribes to the server's binary protocol (/v1) and draws the newest
// cloud with WebGL2. Plain ES module, no dependencies, nothing fetched from outside the page's origin.
//
// Frames: `compact` messages (uint16 depth + JPEG colour + pinhole intrinsics) are unprojected in the
// vertex shader, x = (u - cx)/fx·z, y = (v - cy)/fy·z (depthcloud.geometry.Unprojector's geometry),
// then rotated into the served frame; point messages (f32/f16/i16mm xyz, optional rgb, optional
// faces for meshes from `depthcloud view`) are drawn as they come. Only the newest message is kept:
// one arriving before the previous frame is decoded and drawn replaces the waiting one (counted as
// dropped), so a slow page never decodes a frame it will not draw.

const params = new URLSearchParams(location.search);
const hashParams = new URLSearchParams(location.hash.replace(/^#/, ""));
const option = (key, fallback) => params.get(key) ?? hashParams.get(key) ?? fallback;
const TOKEN = option("token", null);
const WANT_ENCODING = option("encoding", "auto");
const DECIMATION = option("decimation", null);
// Over a network the depth image is deflated (~5× fewer bytes); on this machine the CPU is dearer.
const LOOPBACK = /^(localhost|127(\.\d+){3}|\[::1\])$/.test(location.hostname);
const COMPRESS = option("compress", LOOPBACK ? "none" : "deflate");

const FRAME_AXES = {
  optical: { fwd: [0, 0, 1], up: [0, -1, 0] },
  zup: { fwd: [1, 0, 0], up: [0, 0, 1] },
  opengl: { fwd: [0, 0, -1], up: [0, 1, 0] },
};
const BACKGROUND = [0.09, 0.098, 0.114];
const MODES = { rgb: 0, depth: 1, height: 2 };

// -- small vector / matrix helpers (column-major 4×4, like GLSL) ---------------------------------
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const scale = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => { const l = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / l, a[1] / l, a[2] / l]; };

function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
  return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0]);
}

function lookAt(eye, target, up) {
  const z = norm(sub(eye, target)), x = norm(cross(up, z)), y = cross(z, x);
  return new Float32Array([x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
    -dot(x, eye), -dot(y, eye), -dot(z, eye), 1]);
}

function multiply(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
    out[c * 4 + r] = s;
  }
  return out;
}

// -- shaders ---------------------------------------------------------------------------------------
const COLOR_GLSL = `
uniform int uMode;            // 0 rgb, 1 depth, 2 height
uniform bool uHasColor;
uniform vec3 uFwd, uUp;       // the frame's forward and up axes
uniform vec2 uDepthRange, uHeightRange;
vec3 ramp(float t) {          // dark blue → cyan → green → yellow → red
  t = clamp(t, 0.0, 1.0) * 4.0;
  vec3 c0 = vec3(0.20, 0.10, 0.55), c1 = vec3(0.10, 0.60, 0.95), c2 = vec3(0.20, 0.85, 0.45),
       c3 = vec3(0.98, 0.82, 0.15), c4 = vec3(0.90, 0.18, 0.12);
  if (t < 1.0) return mix(c0, c1, t);
  if (t < 2.0) return mix(c1, c2, t - 1.0);
  if (t < 3.0) return mix(c2, c3, t - 2.0);
  return mix(c3, c4, t - 3.0);
}
vec3 pointColor(vec3 p, vec3 rgb) {
  if (uMode == 0 && uHasColor) return rgb;
  if (uMode == 1) return ramp((dot(p, uFwd) - uDepthRange.x) / max(uDepthRange.y - uDepthRange.x, 1e-6));
  return ramp((dot(p, uUp) - uHeightRange.x) / max(uHeightRange.y - uHeightRange.x, 1e-6));
}`;

const COMPACT_VS = `#version 300 es
precision highp float;
precision highp int;
uniform highp usampler2D uDepth;
uniform sampler2D uColor;
uniform int uWidth;
uniform vec4 uK;              // fx, fy, cx, cy of the depth image
uniform float uScale;         // metres per depth unit
uniform mat3 uRot;            // optical → served frame
uniform mat4 uMVP, uMV;
uniform float uPointSize;
uniform float uProj;          // pixels per unit of tan(angle): drawing-buffer height / 2 / tan(fovy / 2)
${COLOR_GLSL}
out vec3 vColor;
void main() {
  int u = gl_VertexID % uWidth;
  int v = gl_VertexID / uWidth;
  uint q = texelFetch(uDepth, ivec2(u, v), 0).r;
  if (q == 0u) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; vColor = vec3(0.0); return; }
  float z = float(q) * uScale;
  vec3 p = uRot * vec3((float(u) - uK.z) / uK.x * z, (float(v) - uK.w) / uK.y * z, z);
  vec3 rgb = uHasColor ? texelFetch(uColor, ivec2(u, v), 0).rgb : vec3(0.0);
  vColor = pointColor(p, rgb);
  gl_Position = uMVP * vec4(p, 1.0);
  // A point covers its pixel's footprint (z / fx metres wide), times half the size setting: from the
  // camera's own viewpoint size 2 tiles the image exactly, and points grow as the view closes in.
  float dist = max(-(uMV * vec4(p, 1.0)).z, 1e-3);
  gl_PointSize = clamp(0.5 * uPointSize * z / uK.x * uProj / dist, 1.0, 64.0);
}`;

const POINTS_VS = `#version 300 es
precision highp float;
in vec3 aPos;
in vec3 aColor;
uniform float uPosScale;
uniform mat4 uMVP, uMV;
uniform float uPointSize;
${COLOR_GLSL}
out vec3 vColor;
out vec3 vView;
void main() {
  vec3 p = aPos * uPosScale;
  vColor = pointColor(p, aColor);
  vView = (uMV * vec4(p, 1.0)).xyz;
  gl_Position = uMVP * vec4(p, 1.0);
  gl_PointSize = uPointSize;
}`;

const FLAT_FS = `#version 300 es
precision mediump float;
in vec3 vColor;
in vec3 vView;
uniform bool uShade;          // triangles: a headlight on the face normal
out vec4 outColor;
void main() {
  vec3 c = vColor;
  if (uShade) {
    vec3 n = normalize(cross(dFdx(vView), dFdy(vView)));
    c *= 0.35 + 0.65 * abs(n.z);
  }
  outColor = vec4(c, 1.0);
}`;

const COMPACT_FS = `#version 300 es
precision mediump float;
in vec3 vColor;
out vec4 outColor;
void main() { outColor = vec4(vColor, 1.0); }`;

const LINES_VS = `#version 300 es
precision highp float;
in vec3 aPos;
in vec3 aColor;
uniform mat4 uMVP;
out vec3 vColor;
void main() { vColor = aColor; gl_Position = uMVP * vec4(aPos, 1.0); }`;

function compile(gl, vsText, fsText) {
  const make = (type, text) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, text);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, make(gl.VERTEX_SHADER, vsText));
  gl.attachShader(prog, make(gl.FRAGMENT_SHADER, fsText));
  gl.bindAttribLocation(prog, 0, "aPos");
  gl.bindAttribLocation(prog, 1, "aColor");
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  const uniforms = {};
  const n = gl.getProgramParameter(prog, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < n; i++) {
    const name = gl.getActiveUniform(prog, i).name;
    uniforms[name] = gl.getUniformLocation(prog, name);
  }
  return { prog, u: uniforms };
}

// -- wire format -----------------------------------------------------------------------------------
const DTYPE_BYTES = { "<f4": 4, "<u4": 4, "<f2": 2, "<i2": 2, "<u2": 2, u1: 1, jpeg: 1 };

export async function parseMessage(buf) {
  const dv = new DataView(buf);
  const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
  if (magic !== "DCPC") throw new Error(`bad magic ${magic}`);
  const version = dv.getUint16(4, true);
  if (version !== 1) throw new Error(`protocol version ${version} is not supported`);
  const headLen = dv.getUint32(6, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 10, headLen)));
  let off = 10 + headLen;
  if (header.compress === "deflate") {  // zlib stream: the browser inflates it natively
    const inflated = new Blob([buf.slice(off)]).stream().pipeThrough(new DecompressionStream("deflate"));
    buf = await new Response(inflated).arrayBuffer();
    off = 0;
  } else if (header.compress !== "none") {
    throw new Error(`compression ${header.compress} is not supported here`);
  }
  if (buf.byteLength - off !== header.body_bytes) throw new Error("the body's length differs from the header's");
  const fields = {};
  for (const f of header.fields) {
    const count = f.shape.reduce((a, b) => a * b, 1);
    const size = count * (DTYPE_BYTES[f.dtype] ?? NaN);
    if (!(off + size <= buf.byteLength)) throw new Error(`field ${f.name} runs past the message`);
    fields[f.name] = { dtype: f.dtype, shape: f.shape, bytes: buf.slice(off, off + size) };  // aligned copy
    off += size;
  }
  return { header, fields };
}

// -- the viewer ------------------------------------------------------------------------------------
class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: false, alpha: false });
    if (!gl) throw new Error("this browser has no WebGL2");
    this.gl = gl;
    this.compactProg = compile(gl, COMPACT_VS, COMPACT_FS);
    this.pointsProg = compile(gl, POINTS_VS, FLAT_FS);
    this.linesProg = compile(gl, LINES_VS, COMPACT_FS);
    this.emptyVao = gl.createVertexArray();
    this.items = new Map();
    this.frame = "optical";
    this.mode = option("colorby", "rgb");
    this.pointSize = Number(option("pointsize", 3));
    this.showGrid = option("grid", "1") !== "0";
    this.camera = { target: [0, 0, 2], dist: 2, yaw: 0, pitch: 0, fovy: 1.0 };
    this.viewed = false;      // reset to fit once, when the first frame arrives
    this.gridHeight = 0;
    this.guides = null;
    this.dirty = true;
  }

  axes() { return FRAME_AXES[this.frame] ?? FRAME_AXES.optical; }

  eye() {
    const { fwd, up } = this.axes(), c = this.camera;
    const right = cross(fwd, up);
    const dir = add(scale(add(scale(fwd, Math.cos(c.yaw)), scale(right, Math.sin(c.yaw))), Math.cos(c.pitch)),
      scale(up, Math.sin(c.pitch)));
    return sub(c.target, scale(dir, c.dist));
  }

  matrices() {
    const gl = this.gl, c = this.camera;
    const aspect = gl.drawingBufferWidth / Math.max(1, gl.drawingBufferHeight);
    const mv = lookAt(this.eye(), c.target, this.axes().up);
    const near = Math.max(0.01, c.dist * 0.005);
    return { mv, mvp: multiply(perspective(c.fovy, aspect, near, near * 1e5), mv), aspect };
  }

  // Reset: a camera's own viewpoint for depth images (origin, looking forward, its vertical field of
  // view), else the bounding box of everything seen along the frame's forward axis.
  resetView() {
    const first = this.items.get(0);
    const { fwd } = this.axes();
    const c = this.camera;
    c.yaw = 0; c.pitch = 0;
    if (first && first.kind === "compact") {
      const k = first.K;
      c.fovy = 2 * Math.atan(first.height / 2 / k.fy);
      const d = Math.max(0.5, (first.depthRange[0] + first.depthRange[1]) / 2);
      c.target = scale(fwd, d);
      c.dist = d;
    } else {
      let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
      for (const it of this.items.values()) {
        lo = lo.map((x, i) => Math.min(x, it.bboxMin[i]));
        hi = hi.map((x, i) => Math.max(x, it.bboxMax[i]));
      }
      if (!Number.isFinite(lo[0])) { lo = [-1, -1, -1]; hi = [1, 1, 1]; }
      const center = scale(add(lo, hi), 0.5);
      const radius = Math.max(0.05, Math.hypot(...sub(hi, lo)) / 2);
      const aspect = this.gl.drawingBufferWidth / Math.max(1, this.gl.drawingBufferHeight);
      c.fovy = 50 * Math.PI / 180;
      const fovx = 2 * Math.atan(Math.tan(c.fovy / 2) * aspect);
      c.target = center;
      c.dist = radius / Math.sin(Math.min(c.fovy, fovx) / 2);
    }
    let h = Infinity;
    for (const it of this.items.values()) h = Math.min(h, it.heightRange[0]);
    this.gridHeight = Number.isFinite(h) ? h - 0.01 : 0;
    if (this.guides) {  // rebuilt at the new height on the next draw
      for (const b of this.guides.buffers) this.gl.deleteBuffer(b);
      this.gl.deleteVertexArray(this.guides.vao);
      this.guides = null;
    }
    this.dirty = true;
  }

  // -- items -------------------------------------------------------------------------------------
  async ingest(msg) {
    const { header, fields } = await parseMessage(msg.buf);
    const index = header.item ?? 0;
    if (header.items !== undefined) for (const k of [...this.items.keys()]) if (k >= header.items) this.dropItem(k);
    if (header.frame !== this.frame && FRAME_AXES[header.frame]) { this.frame = header.frame; this.viewed = false; }
    const old = this.items.get(index);
    const item = header.encoding === "compact" ? await this.compactItem(header, fields, old)
      : this.pointsItem(header, fields, old);
    item.name = header.name ?? null;
    item.seq = header.seq;
    item.bytes = msg.buf.byteLength;
    this.items.set(index, item);
    if (!this.viewed && (header.items === undefined || this.items.size >= header.items)) {
      this.viewed = true;
      this.resetView();
    }
    this.dirty = true;
    return item;
  }

  dropItem(k) {
    const it = this.items.get(k);
    if (it) this.dropItemObjects(it);
    this.items.delete(k);
  }

  async compactItem(header, fields, old) {
    const gl = this.gl;
    const w = header.width, h = header.height;
    const depth = new Uint16Array(fields.depth.bytes);
    const R = header.rotation;
    const { fwd, up } = FRAME_AXES[header.frame] ?? FRAME_AXES.optical;
    // Ranges for depth/height colouring (and the view reset), from the same geometry as the shader.
    const k = header.intrinsics, s = header.scale;
    let dlo = Infinity, dhi = -Infinity, hlo = Infinity, hhi = -Infinity, count = 0;
    const step = Math.max(1, Math.floor(Math.sqrt((w * h) / 40000)));
    for (let v = 0; v < h; v += step) {
      const yr = (v - k.cy) / k.fy;
      for (let u = 0; u < w; u += step) {
        const q = depth[v * w + u];
        if (q === 0) continue;
        const z = q * s, x = (u - k.cx) / k.fx * z, y = yr * z;
        const p = [R[0] * x + R[1] * y + R[2] * z, R[3] * x + R[4] * y + R[5] * z, R[6] * x + R[7] * y + R[8] * z];
        const dd = dot(p, fwd), hh = dot(p, up);
        if (dd < dlo) dlo = dd; if (dd > dhi) dhi = dd;
        if (hh < hlo) hlo = hh; if (hh > hhi) hhi = hh;
        count++;
      }
    }
    // Textures are allocated once per image size (immutable storage) and only refilled per frame.
    let item = old;
    if (!(old && old.kind === "compact" && old.width === w && old.height === h)) {
      if (old) this.dropItemObjects(old);
      item = { kind: "compact", width: w, height: h, depthTex: gl.createTexture(), colorTex: gl.createTexture() };
      gl.bindTexture(gl.TEXTURE_2D, item.depthTex);
      gl.texStorage2D(gl.TEXTURE_2D, 1, gl.R16UI, w, h);
      setNearest(gl);
      gl.bindTexture(gl.TEXTURE_2D, item.colorTex);
      gl.texStorage2D(gl.TEXTURE_2D, 1, gl.RGBA8, w, h);
      setNearest(gl);
    }
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.bindTexture(gl.TEXTURE_2D, item.depthTex);
    gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.RED_INTEGER, gl.UNSIGNED_SHORT, depth);
    item.hasColor = Boolean(fields.color);
    if (fields.color) {
      const bitmap = await createImageBitmap(new Blob([fields.color.bytes], { type: "image/jpeg" }),
        { colorSpaceConversion: "none", premultiplyAlpha: "none" });
      gl.bindTexture(gl.TEXTURE_2D, item.colorTex);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      bitmap.close();
    }
    Object.assign(item, {
      K: k, scale: s, rotation: R, count: header.count,
      depthRange: count ? [dlo, dhi] : [0, 1], heightRange: count ? [hlo, hhi] : [0, 1],
      bboxMin: [0, 0, 0], bboxMax: [0, 0, 0],
    });
    return item;
  }

  dropItemObjects(it) {
    const gl = this.gl;
    for (const key of ["depthTex", "colorTex"]) if (it[key]) gl.deleteTexture(it[key]);
    for (const key of ["posBuf", "colBuf", "idxBuf"]) if (it[key]) gl.deleteBuffer(it[key]);
    if (it.vao) gl.deleteVertexArray(it.vao);
  }

  pointsItem(header, fields, old) {
    const gl = this.gl;
    if (old) this.dropItemObjects(old);
    const xyz = fields.xyz;
    if (!xyz) throw new Error("cloud message without xyz");
    const n = xyz.shape[0];
    const types = { "<f4": [gl.FLOAT, Float32Array], "<f2": [gl.HALF_FLOAT, null], "<i2": [gl.SHORT, Int16Array] };
    const [glType, View] = types[xyz.dtype] ?? [];
    if (glType === undefined) throw new Error(`xyz dtype ${xyz.dtype} is not supported`);
    const item = { kind: fields.faces ? "mesh" : "points", count: n, vao: gl.createVertexArray(),
      posBuf: gl.createBuffer(), posScale: header.scale ?? 1, hasColor: Boolean(fields.rgb) };
    gl.bindVertexArray(item.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, item.posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, xyz.bytes, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 3, glType, false, 0, 0);
    if (fields.rgb) {
      item.colBuf = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, item.colBuf);
      gl.bufferData(gl.ARRAY_BUFFER, fields.rgb.bytes, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(1);
      gl.vertexAttribPointer(1, 3, gl.UNSIGNED_BYTE, true, 0, 0);
    } else {
      gl.disableVertexAttribArray(1);
      gl.vertexAttrib3f(1, 0.8, 0.8, 0.8);
    }
    if (fields.faces) {
      item.idxBuf = gl.createBuffer();
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, item.idxBuf);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, fields.faces.bytes, gl.STATIC_DRAW);
      item.indexCount = fields.faces.shape[0] * 3;
    }
    gl.bindVertexArray(null);
    // Bounds and colour ranges on the CPU (f16 positions are not read back: ranges from the header).
    const { fwd, up } = FRAME_AXES[header.frame] ?? FRAME_AXES.optical;
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    let dlo = Infinity, dhi = -Infinity, hlo = Infinity, hhi = -Infinity;
    if (View) {
      const a = new View(xyz.bytes), sc = item.posScale;
      for (let i = 0; i < n; i++) {
        const p = [a[3 * i] * sc, a[3 * i + 1] * sc, a[3 * i + 2] * sc];
        for (let j = 0; j < 3; j++) { if (p[j] < lo[j]) lo[j] = p[j]; if (p[j] > hi[j]) hi[j] = p[j]; }
        const dd = dot(p, fwd), hh = dot(p, up);
        if (dd < dlo) dlo = dd; if (dd > dhi) dhi = dd;
        if (hh < hlo) hlo = hh; if (hh > hhi) hhi = hh;
      }
    }
    Object.assign(item, { bboxMin: lo, bboxMax: hi,
      depthRange: n && View ? [dlo, dhi] : [0, 5], heightRange: n && View ? [hlo, hhi] : [-1, 1] });
    return item;
  }

  // -- drawing -----------------------------------------------------------------------------------
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr)), h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w; this.canvas.height = h; this.dirty = true;
    }
  }

  colorUniforms(p, item) {
    const gl = this.gl, { fwd, up } = this.axes();
    gl.uniform1i(p.u.uMode, MODES[this.mode] ?? 0);
    gl.uniform1i(p.u.uHasColor, item.hasColor ? 1 : 0);
    gl.uniform3fv(p.u.uFwd, fwd);
    gl.uniform3fv(p.u.uUp, up);
    gl.uniform2fv(p.u.uDepthRange, item.depthRange);
    gl.uniform2fv(p.u.uHeightRange, item.heightRange);
    gl.uniform1f(p.u.uPointSize, this.pointSize);
  }

  draw() {
    const gl = this.gl;
    this.resize();
    gl.viewport(0, 0, gl.drawingBufferWidth, gl.drawingBufferHeight);
    gl.clearColor(...BACKGROUND, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    const { mv, mvp } = this.matrices();
    for (const item of this.items.values()) {
      if (item.kind === "compact") {
        const p = this.compactProg;
        gl.useProgram(p.prog);
        gl.bindVertexArray(this.emptyVao);
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, item.depthTex);
        gl.uniform1i(p.u.uDepth, 0);
        gl.activeTexture(gl.TEXTURE1);
        gl.bindTexture(gl.TEXTURE_2D, item.colorTex);
        gl.uniform1i(p.u.uColor, 1);
        gl.uniform1i(p.u.uWidth, item.width);
        gl.uniform4f(p.u.uK, item.K.fx, item.K.fy, item.K.cx, item.K.cy);
        gl.uniform1f(p.u.uScale, item.scale);
        const R = item.rotation;  // row-major → GLSL's column-major
        gl.uniformMatrix3fv(p.u.uRot, false, [R[0], R[3], R[6], R[1], R[4], R[7], R[2], R[5], R[8]]);
        gl.uniformMatrix4fv(p.u.uMVP, false, mvp);
        gl.uniformMatrix4fv(p.u.uMV, false, mv);
        gl.uniform1f(p.u.uProj, gl.drawingBufferHeight / 2 / Math.tan(this.camera.fovy / 2));
        this.colorUniforms(p, item);
        gl.drawArrays(gl.POINTS, 0, item.width * item.height);
      } else {
        const p = this.pointsProg;
        gl.useProgram(p.prog);
        gl.bindVertexArray(item.vao);
        gl.uniformMatrix4fv(p.u.uMVP, false, mvp);
        gl.uniformMatrix4fv(p.u.uMV, false, mv);
        gl.uniform1f(p.u.uPosScale, item.posScale);
        this.colorUniforms(p, item);
        if (item.kind === "mesh") {
          gl.uniform1i(p.u.uShade, 1);
          gl.drawElements(gl.TRIANGLES, item.indexCount, gl.UNSIGNED_INT, 0);
        } else {
          gl.uniform1i(p.u.uShade, 0);
          gl.drawArrays(gl.POINTS, 0, item.count);
        }
      }
    }
    if (this.showGrid) this.drawGuides(mvp);
    gl.bindVertexArray(null);
    this.dirty = false;
  }

  // A 10 m grid (0.5 m cells) on the frame's ground plane just under the lowest point, and the
  // frame's x/y/z axes (red/green/blue, 0.5 m) at its origin.
  drawGuides(mvp) {
    const gl = this.gl;
    if (!this.guides) {
      const { fwd, up } = this.axes(), right = cross(fwd, up), base = scale(up, this.gridHeight);
      const pos = [], col = [];
      const line = (a, b, c) => { pos.push(...a, ...b); col.push(...c, ...c); };
      const g = [0.30, 0.32, 0.36];
      for (let i = -10; i <= 10; i++) {
        line(add(base, add(scale(right, i * 0.5), scale(fwd, -5))), add(base, add(scale(right, i * 0.5), scale(fwd, 5))), g);
        line(add(base, add(scale(fwd, i * 0.5), scale(right, -5))), add(base, add(scale(fwd, i * 0.5), scale(right, 5))), g);
      }
      line([0, 0, 0], [0.5, 0, 0], [0.95, 0.3, 0.3]);
      line([0, 0, 0], [0, 0.5, 0], [0.3, 0.9, 0.35]);
      line([0, 0, 0], [0, 0, 0.5], [0.35, 0.5, 1.0]);
      const vao = gl.createVertexArray(), buffers = [];
      gl.bindVertexArray(vao);
      for (const [loc, data] of [[0, pos], [1, col]]) {
        const buf = gl.createBuffer();
        buffers.push(buf);
        gl.bindBuffer(gl.ARRAY_BUFFER, buf);
        gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(data), gl.STATIC_DRAW);
        gl.enableVertexAttribArray(loc);
        gl.vertexAttribPointer(loc, 3, gl.FLOAT, false, 0, 0);
      }
      this.guides = { vao, buffers, count: pos.length / 3 };
    }
    const p = this.linesProg;
    gl.useProgram(p.prog);
    gl.bindVertexArray(this.guides.vao);
    gl.uniformMatrix4fv(p.u.uMVP, false, mvp);
    gl.drawArrays(gl.LINES, 0, this.guides.count);
  }

  // -- interaction -------------------------------------------------------------------------------
  orbit(dx, dy) {
    const c = this.camera;
    // The scene follows the hand: dragging right swings the eye left, dragging down lifts it.
    c.yaw += dx * 0.005;
    c.pitch = Math.max(-1.55, Math.min(1.55, c.pitch - dy * 0.005));
    this.dirty = true;
  }

  pan(dx, dy) {
    const c = this.camera, eye = this.eye();
    const z = norm(sub(eye, c.target)), x = norm(cross(this.axes().up, z)), y = cross(z, x);
    const k = 2 * c.dist * Math.tan(c.fovy / 2) / Math.max(1, this.canvas.clientHeight);
    c.target = add(c.target, add(scale(x, -dx * k), scale(y, dy * k)));
    this.dirty = true;
  }

  zoom(factor) {
    this.camera.dist = Math.max(0.02, Math.min(1e4, this.camera.dist * factor));
    this.dirty = true;
  }
}

function setNearest(gl) {
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
}

function bindControls(viewer) {
  const canvas = viewer.canvas;
  const pointers = new Map();
  let pinch = null;
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, button: e.button, shift: e.shiftKey });
    pinch = null;
  });
  const release = (e) => { pointers.delete(e.pointerId); pinch = null; };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("pointermove", (e) => {
    const p = pointers.get(e.pointerId);
    if (!p) return;
    const dx = e.clientX - p.x, dy = e.clientY - p.y;
    p.x = e.clientX; p.y = e.clientY;
    if (pointers.size === 1) {
      if (p.button === 2 || p.button === 1 || p.shift || e.shiftKey) viewer.pan(dx, dy);
      else viewer.orbit(dx, dy);
    } else if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const mid = [(a.x + b.x) / 2, (a.y + b.y) / 2], span = Math.hypot(a.x - b.x, a.y - b.y);
      if (pinch) {
        viewer.pan(mid[0] - pinch.mid[0], mid[1] - pinch.mid[1]);
        if (span > 0 && pinch.span > 0) viewer.zoom(pinch.span / span);
      }
      pinch = { mid, span };
    }
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    viewer.zoom(Math.exp(e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)));
  }, { passive: false });
  canvas.addEventListener("dblclick", () => viewer.resetView());
  window.addEventListener("keydown", (e) => { if (e.key === "r" || e.key === "R") viewer.resetView(); });
  document.getElementById("reset").addEventListener("click", () => viewer.resetView());
  const colorby = document.getElementById("colorby");
  colorby.value = viewer.mode;
  colorby.addEventListener("change", () => { viewer.mode = colorby.value; viewer.dirty = true; });
  const size = document.getElementById("pointsize"), sizeOut = document.getElementById("pointsize-value");
  size.value = String(viewer.pointSize); sizeOut.textContent = size.value;
  size.addEventListener("input", () => { viewer.pointSize = Number(size.value); sizeOut.textContent = size.value; viewer.dirty = true; });
  const grid = document.getElementById("grid");
  grid.checked = viewer.showGrid;
  grid.addEventListener("change", () => { viewer.showGrid = grid.checked; viewer.dirty = true; });
  window.addEventListener("resize", () => { viewer.dirty = true; });
}

// -- connection: newest message only, reconnect with backoff --------------------------------------
const stats = {
  state: "connecting", received: 0, drawn: 0, dropped: 0, errors: 0, reconnects: 0, points: 0, bytes: 0,
  encoding: null, seq: null, latencyMs: null, ingestMs: null, lastError: null, source: null, recvTimes: [], drawTimes: [],
};
window.depthcloudViewer = { stats };

function rate(times) {
  const now = performance.now();
  while (times.length && now - times[0] > 2000) times.shift();
  return times.length >= 2 ? (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000) : 0;
}

function withToken(path) {
  return TOKEN ? `${path}?token=${encodeURIComponent(TOKEN)}` : path;
}

function start() {
  const viewer = new Viewer(document.getElementById("view"));
  window.depthcloudViewer.viewer = viewer;
  bindControls(viewer);
  let pending = null, busy = false, fresh = null, backoff = 250, ws = null, encoding = null;

  const request = (doc) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(doc)); };
  const subscribe = () => {
    const doc = { op: "subscribe", encoding, colors: true, compress: COMPRESS };
    if (DECIMATION) doc.decimation = Number(DECIMATION);
    stats.encoding = encoding;
    request(doc);
  };

  // Decode the newest message only once the previous frame is on screen: a frame that could not be
  // drawn costs no decoding or upload (it is replaced while it waits, and counted as dropped).
  async function pump() {
    if (busy || !pending || fresh) return;
    busy = true;
    const msg = pending;
    pending = null;
    try {
      const t0 = performance.now();
      const item = await viewer.ingest(msg);
      stats.ingestMs = performance.now() - t0;
      fresh = { t: msg.t, item };
      stats.lastError = null;  // a frame drawn again: an earlier server error is over
    } catch (err) {
      stats.errors++;
      stats.lastError = String(err.message ?? err);
    }
    busy = false;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}${withToken("/v1")}`);
    ws.binaryType = "arraybuffer";
    stats.state = "connecting";
    ws.onopen = () => { backoff = 250; stats.state = "connected"; request({ op: "info" }); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const doc = JSON.parse(ev.data);
        if (doc.type === "info") {
          const offered = doc.encodings ?? [];
          encoding = WANT_ENCODING !== "auto" ? WANT_ENCODING : offered.includes("compact") ? "compact" : "f32";
          subscribe();
        } else if (doc.type === "error") {
          stats.lastError = `${doc.code}: ${doc.error}`;
          if (doc.code === "bad_request" && encoding === "compact" && WANT_ENCODING === "auto") {
            encoding = "f32";  // e.g. a distorted camera or a voxel grid: points instead
            subscribe();
          }
        } else if (doc.type === "subscribed") {
          stats.lastError = null;
        }
        return;
      }
      stats.received++;
      stats.recvTimes.push(performance.now());
      if (pending) stats.dropped++;
      pending = { buf: ev.data, t: performance.now() };
      pump();
    };
    ws.onclose = () => {
      stats.state = `reconnecting in ${(backoff / 1000).toFixed(1)} s`;
      stats.reconnects++;
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    };
  }

  function frameLoop() {
    if (fresh) {
      viewer.dirty = true;
    }
    if (viewer.dirty) {
      viewer.draw();
      if (fresh) {
        const now = performance.now();
        stats.drawn++;
        stats.drawTimes.push(now);
        stats.latencyMs = now - fresh.t;
        stats.points = [...viewer.items.values()].reduce((a, it) => a + (it.count ?? 0), 0);
        stats.bytes = [...viewer.items.values()].reduce((a, it) => a + (it.bytes ?? 0), 0);
        stats.seq = fresh.item.seq;
        fresh = null;
      }
    }
    pump();
    requestAnimationFrame(frameLoop);
  }

  async function poll() {
    try {
      const r = await fetch(withToken("/health"), { cache: "no-store" });
      const doc = await r.json();
      stats.source = doc.source ?? null;
    } catch (err) {
      stats.source = null;
    }
    setTimeout(poll, 1000);
  }

  const status = document.getElementById("status");
  setInterval(() => {
    const src = stats.source;
    const parts = [
      stats.state,
      `recv ${rate(stats.recvTimes).toFixed(1)} fps`,
      `drawn ${rate(stats.drawTimes).toFixed(1)} fps`,
      `dropped ${stats.dropped}`,
      `${stats.points.toLocaleString("en-US")} pts`,
      `${(stats.bytes / 1024).toFixed(0)} KiB/frame${stats.encoding ? ` (${stats.encoding})` : ""}`,
      `latency ${stats.latencyMs === null ? "–" : stats.latencyMs.toFixed(0)} ms`,
      src ? `source ${src.state}${src.fps ? ` ${src.fps.toFixed(1)} fps` : ""}` : "source ?",
      `frames ${stats.received}`,
    ];
    if (stats.lastError) parts.push(stats.lastError);
    status.textContent = parts.join(" · ");
    status.classList.toggle("down", stats.state !== "connected" || (src && src.state !== "running"));
  }, 250);

  connect();
  poll();
  requestAnimationFrame(frameLoop);
}

start();
